"""A sosw-style handler switched by an import only keeps its generation limit.

sosw's usual handler never reads its event through the library and builds a fresh payload for
each sibling, so no chain metadata travels with it. The parent records the child's chain step
under the Invoke's request id, which Lambda hands the child as ``context.aws_request_id``; the
child finds its place there. Each generation runs in a process of its own, so no in-process
memory can carry the chain.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.integration.siblings.support import REGION, SiblingsEnv

# What one execution of the sosw-style handler does (only the import differs from sosw).
HANDLER = textwrap.dedent(
    """
    import json, sys
    from dataclasses import dataclass
    from siblings import SiblingsManager   # was: from sosw.components.siblings import ...

    endpoint, region, arn, request_id, cursor = sys.argv[1:6]

    @dataclass
    class Context:
        invoked_function_arn: str
        aws_request_id: str
        def get_remaining_time_in_millis(self):
            return 60_000

    siblings_client = SiblingsManager(custom_config={
        "endpoint_url": endpoint, "region_name": region, "max_generations": 3,
    })
    result = siblings_client.spawn_sibling(Context(arn, request_id), payload={"cursor": int(cursor)})
    print(json.dumps(result.to_dict()))
    """
)


def run_generation(env: SiblingsEnv, request_id: str, cursor: int) -> dict[str, object]:
    """One execution, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", HANDLER, env.endpoint_url, REGION, env.function_arn, request_id, str(cursor)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_three_generations_then_the_chain_is_stopped(env: SiblingsEnv) -> None:
    env.rule("schedule")
    request_id, generations = "root-execution", []
    for cursor in range(6):
        result = run_generation(env, request_id, cursor)
        generations.append((result["generation"], result["reason"]))
        if not result["spawned"]:
            break
        request_id = str(result["request_id"])  # Lambda gives this id to the sibling
    assert generations == [(1, "spawned"), (2, "spawned"), (3, "spawned"), (4, "max_generations")]
    assert env.invoke_count() == 3
    # One chain: every spawn record carries the root's chain id.
    events = env.invokes.events
    assert {event["__siblings__"]["chain_id"] for event in events} == {"root-execution"}
