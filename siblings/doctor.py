"""``siblings doctor FUNCTION``: a pre-flight of a real deployment, one line per check.

Each check asks AWS one or two read-only questions (the payload check writes, reads and deletes
one small object) and prints ``✓ name: what it found`` or ``✗ name: what is wrong -> the fix``.
The configuration checked is the function's own: its ``SIBLINGS_*`` environment variables
(``GetFunctionConfiguration``), with the command's ``--table-name``/``--endpoint-url``/
``--region`` on top. The exit status is 0 only when every check passes, 1 otherwise; an
environment problem (no Region, no credentials, an unknown function) is one line on stderr
with :mod:`siblings.cli_errors`' exit codes, as in the other commands.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from estimator.aws import Clients
from siblings.config import SiblingsConfig
from siblings.context import read_context
from siblings.iam import RUNTIME_ACTIONS
from siblings.rules import RuleLookup
from siblings.schedules import ScheduleLookup

TTL_ATTRIBUTE = "ttl"
"""The attribute the shared table's TTL must be on (``estimator.store``'s ``ttl``)."""
_PROBE = "siblings-doctor-probe"
# What Lambda itself documents for recursion: "Terminate" stops a loop after ~16 invocations
# (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html).
_ALLOW = "Allow"


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``detail`` says what was found, ``fix`` what to do when it failed."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        """``✓ name: detail`` or ``✗ name: detail -> fix``."""
        if self.ok:
            return f"✓ {self.name}: {self.detail}"
        return f"✗ {self.name}: {self.detail}" + (f" -> {self.fix}" if self.fix else "")


def _code(exc: Exception) -> str:
    """The error on one short line (an unanswered API may return a whole HTML page)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        text = f"{error.get('Code', '?')}: {error.get('Message', '')}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split()).rstrip(":")
    return text if len(text) <= 120 else text[:117] + "..."


class Doctor:
    """The checks of one function; clients come from ``clients`` (made on first use)."""

    def __init__(
        self, function: str, config: SiblingsConfig, clients: Clients,
        principal_arn: str | None = None,
    ) -> None:
        self.function = function
        self.config = config
        self.clients = clients
        self.principal_arn = principal_arn
        self.configuration: dict[str, Any] = {}

    def checks(self) -> list[Callable[[], Check]]:
        """The checks, in the order they print."""
        return [
            self.check_table, self.check_recursion, self.check_trigger, self.check_concurrency,
            self.check_payload_bucket, self.check_iam, self.check_emf,
        ]

    def run(self) -> list[Check]:
        """Run every check; one that cannot ask AWS fails with the error, the others still run."""
        results = []
        for check in self.checks():
            name = check.__name__.removeprefix("check_").replace("_", " ")
            try:
                results.append(check())
            except (ClientError, BotoCoreError) as exc:
                results.append(Check(name, False, f"could not ask AWS ({_code(exc)})",
                                     "allow the call for these credentials, or check the setup"))
        return results

    def check_table(self) -> Check:
        """The shared table exists and DynamoDB's TTL is on its ``ttl`` attribute."""
        table = self.config.table_name
        dynamodb = self.clients.get("dynamodb")
        try:
            dynamodb.describe_table(TableName=table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            return Check("table", False, f"{table!r} does not exist", "run `siblings create-table`")
        ttl = dynamodb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
        status, attribute = ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")
        if status not in ("ENABLED", "ENABLING") or attribute != TTL_ATTRIBUTE:
            return Check("table", False, f"{table!r} has TTL {status} on {attribute!r}",
                         f"enable TTL on {TTL_ATTRIBUTE!r} (`siblings create-table` does it)")
        return Check("table", True, f"{table!r} with TTL on {TTL_ATTRIBUTE!r}")

    def check_recursion(self) -> Check:
        """``RecursiveLoop: Allow``: with Lambda's default ``Terminate`` a chain is dropped after
        about 16 generations while the parent's Invoke still succeeds."""
        fix = (f"aws lambda put-function-recursion-config --function-name {self.function} "
               "--recursive-loop Allow (template.yaml: RecursiveLoop: Allow)")
        try:
            answer = self.clients.get("lambda").get_function_recursion_config(FunctionName=self.function)
        except (ClientError, BotoCoreError) as exc:
            return Check("recursion", False,
                         f"GetFunctionRecursionConfig not answered ({_code(exc)})", fix)
        loop = answer.get("RecursiveLoop")
        if loop != _ALLOW:
            return Check("recursion", False,
                         f"RecursiveLoop is {loop!r}: Lambda stops a chain after ~16 siblings", fix)
        return Check("recursion", True, "RecursiveLoop is 'Allow'")

    def check_trigger(self) -> Check:
        """An ENABLED EventBridge rule targets the function, or one of the ``trigger_schedules``
        (EventBridge Scheduler) is ENABLED (the guard refuses otherwise)."""
        arn = self.configuration.get("FunctionArn") or self._configuration()["FunctionArn"]
        info = read_context(SimpleNamespace(invoked_function_arn=arn))
        state = RuleLookup(self.clients.get("events")).state(info)
        if state["enabled"]:
            return Check("trigger", True, f"rule {state['rule']!r} is ENABLED")
        schedules = {name: ScheduleLookup(self.clients.get("scheduler")).state(name)["state"]
                     for name in self.config.trigger_schedules}
        enabled = [name for name, value in schedules.items() if value == "ENABLED"]
        if enabled:
            return Check("trigger", True, f"schedule {enabled[0]!r} is ENABLED")
        checked = ", ".join(state["checked"]) or "none"
        named = ", ".join(f"{k} {v or 'missing'}" for k, v in schedules.items()) or "none named"
        return Check("trigger", False,
                     f"no ENABLED EventBridge rule targets {arn} (rules: {checked}) and no "
                     f"ENABLED trigger schedule ({named})",
                     "enable the rule or schedule that starts the function (trigger_schedules "
                     "names schedules), or spawn with force=True")

    def check_concurrency(self) -> Check:
        """Reserved concurrency leaves room for ``max_concurrency`` (and is not 0)."""
        answer = self.clients.get("lambda").get_function_concurrency(FunctionName=self.function)
        reserved = answer.get("ReservedConcurrentExecutions")
        limit = self.config.max_concurrency
        if reserved == 0:
            return Check("concurrency", False, "reserved concurrency is 0: the function never runs",
                         "delete or raise the reserved concurrency")
        if reserved is not None and limit is not None and reserved < limit:
            return Check("concurrency", False,
                         f"reserved concurrency {reserved} < max_concurrency={limit}: Lambda "
                         "throttles before the guard refuses",
                         f"raise reserved concurrency to at least {limit} or lower max_concurrency")
        return Check("concurrency", True, f"reserved {reserved}, max_concurrency {limit}")

    def check_payload_bucket(self) -> Check:
        """With ``payload_bucket``, an object can be written and read under the prefix."""
        bucket = self.config.payload_bucket
        if bucket is None:
            return Check("payload bucket", True, "not configured (large payloads fail to spawn)")
        key = f"{self.config.payload_prefix}{self.function}/{_PROBE}"
        s3 = self.clients.get("s3")
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            return Check("payload bucket", False, f"s3://{bucket}/{key}: {_code(exc)}",
                         "create the bucket or allow s3:PutObject/GetObject under the prefix")
        # The function's own role has no DeleteObject; the probe is tiny.
        with contextlib.suppress(ClientError, BotoCoreError):
            s3.delete_object(Bucket=bucket, Key=key)
        where = f"s3://{bucket}/{self.config.payload_prefix}"
        return Check("payload bucket", True, f"{where} readable and writable")

    def check_iam(self) -> Check:
        """With ``--principal-arn``, IAM's policy simulator allows every runtime action."""
        if self.principal_arn is None:
            return Check("iam", True, "not simulated (pass --principal-arn with the function's role)")
        answer = self.clients.get("iam").simulate_principal_policy(
            PolicySourceArn=self.principal_arn, ActionNames=sorted(RUNTIME_ACTIONS)
        )
        denied = sorted(r["EvalActionName"] for r in answer.get("EvaluationResults", [])
                        if r.get("EvalDecision") != "allowed")
        if denied:
            return Check("iam", False, f"{self.principal_arn} may not {', '.join(denied)}",
                         "add them to the role's policy (siblings.iam.RUNTIME_ACTIONS)")
        return Check("iam", True, f"{len(RUNTIME_ACTIONS)} runtime actions allowed")

    def check_emf(self) -> Check:
        """Where the decision metrics go on Lambda (metrics off: the dashboard gets nothing)."""
        if not self.config.metrics_enabled:
            return Check("emf", False, "metrics off: the dashboard and alarm get no data",
                         "set SIBLINGS_METRICS_ENABLED=true")
        fmt = (self.configuration.get("LoggingConfig") or {}).get("LogFormat", "Text")
        # The function's package decides whether Powertools prints them; either way each
        # document is one stdout line, which CloudWatch extracts in both log formats.
        return Check("emf", True, "one EMF document per decision on stdout (Powertools when "
                     f"packaged), extracted in LogFormat {fmt}; namespace "
                     f"{self.config.metrics_namespace!r}")

    def _configuration(self) -> dict[str, Any]:
        self.configuration = self.clients.get("lambda").get_function_configuration(
            FunctionName=self.function
        )
        return self.configuration


def function_config(
    function: str, clients: Clients, overrides: Mapping[str, Any]
) -> tuple[SiblingsConfig, dict[str, Any]]:
    """The function's deployed config (its ``SIBLINGS_*`` variables, ``overrides`` on top) and
    its ``GetFunctionConfiguration`` answer. Raises ``ValueError`` for an unknown function."""
    try:
        configuration = clients.get("lambda").get_function_configuration(FunctionName=function)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise  # access denied, rejected credentials...: the CLI's one-line diagnosis
        raise ValueError(f"function {function!r} not found in this account and Region") from exc
    variables = (configuration.get("Environment") or {}).get("Variables") or {}
    return SiblingsConfig.from_env(environ=dict(variables), **overrides), configuration


def run(
    function: str, overrides: Mapping[str, Any], session: Any, out: TextIO, *,
    principal_arn: str | None = None, injected: Mapping[str, Any] | None = None,
) -> int:
    """Print every check of ``function``; 0 when all pass, else 1. ``overrides`` are the
    command's settings (table, endpoint, Region), ``injected`` clients by service (tests)."""
    clients = Clients(SiblingsConfig.from_env(**overrides), session, injected)
    config, configuration = function_config(function, clients, overrides)
    doctor = Doctor(function, config, Clients(config, session, injected), principal_arn)
    doctor.configuration = configuration
    results = doctor.run()
    for result in results:
        print(result.line(), file=out)
    return 0 if all(r.ok for r in results) else 1
