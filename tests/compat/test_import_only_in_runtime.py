"""An import-only sosw handler in the local Lambda runtime: the generation limit stops its chain.

The handler never reads its event through the library and builds a fresh payload for each
sibling (sosw's usual shape). Containers are built and reused as Lambda would, each with its own
manager; the runtime hands every sibling its Invoke's request id, as Lambda does, and the chain
position the parent recorded under that id in the shared table is all that carries the chain
(the library keeps nothing in memory under a key the next generation could know).
"""

from __future__ import annotations

from typing import Any

from estimator import ensure_table
from siblings import SiblingsManager
from siblings.local.provision import create_schedule_rule
from tests.helpers import QuietRuntimeClock
from tests.integration.test_runtime import Local, local, server  # noqa: F401 (fixtures)


def test_a_three_generation_limit_stops_an_import_only_handler(local: Local) -> None:  # noqa: F811
    # A long Timeout: a spawn on a loaded machine must not time out (timeouts are not tested).
    arn = local.function(timeout_seconds=60)
    endpoint = local.server.endpoint_url
    settings = {"endpoint_url": endpoint, "region_name": "us-east-1", "max_generations": 3}
    ensure_table(SiblingsManager(settings).config)
    create_schedule_rule(local.client("events"), "schedule", arn)
    # A sibling may ask for its position before its parent, still running, has recorded it:
    # on this clock its patience lasts until the parent is done however slow the machine, and
    # the root's (nobody will record its position) runs out at once.
    clock = QuietRuntimeClock(local.runtime.running)

    def container() -> Any:
        # What sosw's Processor builds (plus the clock, which sosw's signature leaves free).
        siblings_client = SiblingsManager(custom_config=settings, clock=clock)

        def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
            cursor = (event or {}).get("cursor", 0)
            return siblings_client.spawn_sibling(context, payload={"cursor": cursor + 1}).to_dict()

        return lambda_handler

    local.runtime.register("worker", factory=container)
    local.client("lambda").invoke(FunctionName="worker", InvocationType="Event", Payload=b"{}")
    assert local.runtime.wait_idle(60)
    results = [record.result for record in local.runtime.invocations()]
    assert [(r["generation"], r["reason"]) for r in results] == [
        (1, "spawned"),
        (2, "spawned"),
        (3, "spawned"),
        (4, "max_generations"),
    ]
    assert len({r["chain_id"] for r in results}) == 1  # one chain, found through the table
