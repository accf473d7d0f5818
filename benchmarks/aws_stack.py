"""The emulated AWS of the AWS-time benchmarks: moto behind the quota layer, in this process.

Requests travel over real HTTP on 127.0.0.1, through three layers, outermost first: the
injected DynamoDB outage, the meter (per AWS second), the quota layer (AWS's default quotas as
token buckets, refilled from the virtual clock). The decision path runs one request at a time,
so a server in this process costs no parallelism, and every layer reads the same clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_meter import Meter, Outage
from vclock import VirtualClock, patch_sdk_sleep

from siblings.local.middleware import compose
from siblings.local.quota import QuotaLayer
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer, local_session

ACCOUNT = "123456789012"
OTHER_RULES = 4
"""Enabled rules in the account that target another function (sosw checks them first)."""


def virtual_epoch() -> float:
    """Where AWS time starts: a whole hour half a day ago, so every datapoint lies in the past."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return (now - timedelta(hours=12)).timestamp()


class Stack:
    """The server, its layers and the clock they share; a context manager."""

    def __init__(self) -> None:
        self.clock = VirtualClock(virtual_epoch())
        self.quota = QuotaLayer(1.0, clock=self.clock.now)  # AWS's quotas, unscaled
        self.meter = Meter(self.clock.now)
        self.outage = Outage(self.clock.now)
        self.server = LocalAwsServer(middleware=compose(self.outage.wrap, self.meter.wrap, self.quota.wrap))
        self.session = local_session()

    def __enter__(self) -> Stack:
        self.server.start()
        self.server.reset()  # moto's backends live per process: start from an empty account
        patch_sdk_sleep(self.clock)
        point_environment_at(self.server.endpoint_url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def endpoint_url(self) -> str:
        """The server's URL."""
        return self.server.endpoint_url

    def client(self, service: str) -> Any:
        """A client with the library's retry settings (standard mode, 3 attempts)."""
        from estimator.aws import make_client
        from estimator.config import Config

        config = Config(endpoint_url=self.endpoint_url, region_name=LOCAL_REGION)
        return make_client(service, config, self.session)

    def reset(self) -> None:
        """Zero the counts, refill the buckets, rewind the clock, end any outage."""
        self.quota.reset()
        self.meter.reset()
        self.outage.window = None
        self.outage.injected = 0
        self.clock.set(self.clock.start)
        self.clock.slept = 0.0


def point_environment_at(endpoint_url: str) -> None:
    """Every boto3 client of this process (sosw's too) reaches the local server."""
    for name in list(os.environ):
        if name.startswith("SIBLINGS_") or name.startswith("AWS_ENDPOINT_URL"):
            del os.environ[name]
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": LOCAL_CREDENTIALS["aws_session_token"],
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    os.environ.pop("STAGE", None)  # sosw would DryRun its invokes


def function_arn(name: str) -> str:
    """The ARN of function ``name`` in the local account."""
    return f"arn:aws:lambda:{LOCAL_REGION}:{ACCOUNT}:function:{name}"


def put_steady_metrics(stack: Stack, name: str, concurrency: int, minutes: int,
                       execution_s: float = 30.0) -> None:
    """Lambda's metrics for ``concurrency`` executions of ``execution_s`` at once, every minute
    from 10 minutes before AWS time starts to ``minutes`` after it."""
    cloudwatch = stack.client("cloudwatch")
    dimensions = [{"Name": "FunctionName", "Value": name}]
    data: list[dict[str, Any]] = []
    for minute in range(-10, minutes + 2):
        stamp = datetime.fromtimestamp(stack.clock.start + minute * 60 + 30, tz=UTC)
        data += [
            {"MetricName": "Invocations", "Dimensions": dimensions, "Timestamp": stamp,
             "Value": concurrency * 60 / execution_s, "Unit": "Count"},
            {"MetricName": "Duration", "Dimensions": dimensions, "Timestamp": stamp,
             "Value": execution_s * 1000, "Unit": "Milliseconds"},
            {"MetricName": "ConcurrentExecutions", "Dimensions": dimensions, "Timestamp": stamp,
             "Value": float(concurrency), "Unit": "Count"},
        ]
    for start in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data[start:start + 1000])


def create_rules(stack: Stack, tag: str, arns: list[str], own_first: bool = False) -> list[str]:
    """The account's rules: ``OTHER_RULES`` enabled ones on another function and one per
    function of ``arns``, named so that the functions' own come last in sosw's listing (or
    first, with ``own_first``)."""
    from siblings.local.provision import create_schedule_rule

    events = stack.client("events")
    other = function_arn("bench-other")
    own_prefix = "a" if own_first else "z"
    others = [(f"{tag}-m-other-{index}", other) for index in range(OTHER_RULES)]
    own = [(f"{tag}-{own_prefix}-own-{index}", arn) for index, arn in enumerate(arns)]
    # Named and created in the order wanted, whichever of the two a listing follows.
    for name, arn in own + others if own_first else others + own:
        create_schedule_rule(events, name, arn)
    return [name for name, _ in others + own]


def delete_rules(stack: Stack, rules: list[str]) -> None:
    """Remove a run's rules, so the next run's account looks the same."""
    events = stack.client("events")
    for rule in rules:
        targets = events.list_targets_by_rule(Rule=rule).get("Targets", [])
        if targets:
            events.remove_targets(Rule=rule, Ids=[t["Id"] for t in targets])
        events.delete_rule(Name=rule)
