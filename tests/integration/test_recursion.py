"""Lambda's recursive loop detection, end to end: the embedded server's setting, the local
runtime dropping a 17th invocation of one lineage, and the library refusing before hand-off.

AWS: https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html (Lambda-to-Lambda
chains carry a lineage in the trace header; at ``Terminate``, the default, the chain is dropped
after 16 invocations while an async Invoke still answered 202).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from estimator.store import DynamoStore
from siblings import SiblingsManager
from siblings.config import SiblingsConfig
from siblings.local.calls import CallRecorder
from siblings.local.context import LambdaContext
from siblings.local.middleware import compose
from siblings.local.provision import create_function
from siblings.local.runtime import LocalLambdaRuntime
from siblings.local.server import LOCAL_REGION, LocalAwsServer, local_session

GENERATIONS = 20


@dataclass
class Chain:
    """A server with the runtime in its middleware, and a chain function on it."""

    server: LocalAwsServer
    runtime: LocalLambdaRuntime
    recorder: CallRecorder
    session: Any

    def client(self, service: str) -> Any:
        """A client on the server (forwarding the running execution's trace, if any)."""
        return self.session.client(service, endpoint_url=self.server.endpoint_url)


@pytest.fixture
def chain() -> Iterator[Chain]:
    """A fresh server and runtime per test (the setting and the drops are per function)."""
    recorder = CallRecorder()
    runtime = LocalLambdaRuntime(retry_delays=(0.05, 0.05), metrics_flush_seconds=0.2)
    server = LocalAwsServer(middleware=compose(recorder.wrap, runtime.wrap)).start()
    server.reset()  # moto's state is per process, shared with every other server in it
    env = Chain(server, runtime, recorder, local_session())
    runtime.start(env.client("cloudwatch"))
    try:
        yield env
    finally:
        runtime.stop()
        server.stop()


def _deploy(env: Chain, recursive_loop: str | None, **overrides: Any) -> dict[str, Any]:
    """The ``chain`` function; its handler does one unit and spawns a sibling with the rest.

    Returns what the executions report: generations run, and the work a refused spawn kept.
    """
    lam, iam = env.client("lambda"), env.client("iam")
    create_function(lam, iam, "chain", timeout_seconds=30, recursive_loop=recursive_loop)
    config = SiblingsConfig(
        endpoint_url=env.server.endpoint_url,
        region_name=LOCAL_REGION,
        auto_spawning=True,
        invoke_backoff_seconds=0.01,
        **overrides,
    )
    DynamoStore(config, session=env.session).ensure_table()
    seen: dict[str, Any] = {"generations": [], "kept": [], "results": []}
    lock = threading.Lock()

    def factory() -> Any:
        manager = SiblingsManager(config=config, session=env.session)

        def handler(event: dict[str, Any], context: LambdaContext) -> None:
            with lock:
                seen["generations"].append(event.get("generation", 0))
            rest = event["remaining"] - 1
            if rest <= 0:
                return
            result = manager.spawn_sibling(
                context,
                {"remaining": rest, "generation": event.get("generation", 0) + 1},
                force=event.get("force", False),
            )
            with lock:
                seen["results"].append(result)
                if not result:
                    seen["kept"].append(rest)  # a refusal: the caller still holds its work

        return handler

    env.runtime.register("chain", factory=factory, timeout_seconds=30)
    env.recorder.reset()
    return seen


def _dropped_metric(env: Chain) -> float:
    assert env.runtime.metrics is not None
    env.runtime.metrics.flush()
    now = datetime.now(UTC)
    result = env.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "dropped",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "RecursiveInvocationsDropped",
                        "Dimensions": [{"Name": "FunctionName", "Value": "chain"}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
    )
    return float(sum(result["MetricDataResults"][0]["Values"]))


def test_the_server_answers_the_recursion_config_with_terminate_by_default(chain: Chain) -> None:
    lam = chain.client("lambda")
    create_function(lam, chain.client("iam"), "fresh", recursive_loop=None)
    assert lam.get_function_recursion_config(FunctionName="fresh")["RecursiveLoop"] == "Terminate"
    put = lam.put_function_recursion_config(FunctionName="fresh", RecursiveLoop="Allow")
    assert put["RecursiveLoop"] == "Allow"
    assert lam.get_function_recursion_config(FunctionName="fresh")["RecursiveLoop"] == "Allow"
    with pytest.raises(ClientError) as missing:
        lam.get_function_recursion_config(FunctionName="nobody")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as invalid:
        lam.put_function_recursion_config(FunctionName="fresh", RecursiveLoop="Sometimes")
    assert invalid.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_allow_runs_all_twenty_generations_with_one_setting_lookup(chain: Chain) -> None:
    seen = _deploy(chain, "Allow")
    chain.runtime.invoke_async("chain", {"remaining": GENERATIONS})
    assert chain.runtime.wait_idle(60)
    assert sorted(seen["generations"]) == list(range(GENERATIONS))
    assert all(result.spawned for result in seen["results"]) and not seen["kept"]
    assert chain.runtime.stats().recursion_dropped == 0
    # Cached in both tiers: one call for the whole chain, whichever container ran it.
    assert chain.recorder.count("lambda", "GetFunctionRecursionConfig") == 1
    assert seen["results"][0].guards["recursion"]["recursive_loop"] == "Allow"


def test_terminate_without_the_guard_loses_the_work_lambda_drops_at_sixteen(chain: Chain) -> None:
    seen = _deploy(chain, "Terminate", check_recursive_loop=False)
    chain.runtime.invoke_async("chain", {"remaining": GENERATIONS})
    assert chain.runtime.wait_idle(60)
    # Sixteen invocations ran; the 17th was accepted (202: the parent saw "spawned") and dropped.
    assert sorted(seen["generations"]) == list(range(16))
    assert len(seen["results"]) == 16 and all(result.spawned for result in seen["results"])
    assert not seen["kept"]  # nobody holds generations 16..19 any more: lost
    assert chain.runtime.stats().recursion_dropped == 1
    assert _dropped_metric(chain) == 1.0
    assert chain.recorder.count("lambda", "GetFunctionRecursionConfig") == 0


@pytest.mark.parametrize("force", [False, True])
def test_terminate_with_the_guard_refuses_before_hand_off_and_keeps_the_work(
    chain: Chain, force: bool
) -> None:
    seen = _deploy(chain, "Terminate")
    chain.runtime.invoke_async("chain", {"remaining": GENERATIONS, "force": force})
    assert chain.runtime.wait_idle(60)
    assert seen["generations"] == [0]
    (refused,) = seen["results"]
    assert not refused.spawned and refused.refused and refused.reason == "recursive_loop"
    assert "RecursiveLoop: Allow" in refused.detail
    assert seen["kept"] == [GENERATIONS - 1]  # the caller keeps every unit not done
    assert chain.recorder.count("lambda", "Invoke") == 0  # nothing handed off
    assert chain.runtime.stats().recursion_dropped == 0
