"""Only documented exceptions escape the public API, whatever it is handed.

Documented: ``TypeError`` and ``ValueError`` for bad input (``PayloadTooLarge`` is one), and the
library's own :class:`~siblings.SiblingsError` family for what AWS or the shared table did.
Anything else (``KeyError``, ``AttributeError``, ``RecursionError``...) is a bug.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from estimator import estimate_concurrency
from siblings import METADATA_KEY, Invocation, SiblingsConfig, SiblingsError, SiblingsManager, load_payload
from tests.conftest import Aws
from tests.integration.siblings.support import FUNCTION, REGION, build_env

DOCUMENTED = (TypeError, ValueError, SiblingsError)
ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION}"
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return {"deep": value}


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40), st.binary(max_size=8)
)
json_ish = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    max_leaves=12,
)
metadata = st.one_of(
    json_ish,
    st.fixed_dictionaries(
        {},
        optional={
            "v": st.one_of(st.just(1), json_ish),
            "chain_id": st.one_of(st.text(max_size=200), json_ish),
            "generation": st.one_of(st.integers(), json_ish),
            "parent_request_id": st.one_of(st.text(max_size=50), json_ish),
            "spawned_at": st.one_of(st.floats(), json_ish),
            "payload": st.one_of(json_ish, st.fixed_dictionaries({"s3": json_ish})),
        },
    ),
)
events = st.one_of(
    json_ish,
    st.dictionaries(st.text(max_size=8), json_ish, max_size=3).flatmap(
        lambda base: metadata.map(lambda meta: {**base, METADATA_KEY: meta})
    ),
)
arns = st.one_of(
    st.just(ARN), st.just(f"{ARN}:live"), st.text(max_size=80), json_ish,
    st.from_regex(r"arn:aws:lambda:[a-z0-9-]{1,12}:\d{12}:function:[A-Za-z0-9_-]{1,70}(:[^:]{0,20})?"),
)


def remaining(kind: int) -> Any:
    """A remaining-time method that works, returns junk, raises, or is not a method at all."""
    return [lambda: 30_000, lambda: "soon", lambda: 1 / 0, 5, None][kind % 5]


contexts = st.one_of(
    json_ish,
    st.builds(
        lambda arn, request_id, kind: SimpleNamespace(
            invoked_function_arn=arn, aws_request_id=request_id, get_remaining_time_in_millis=remaining(kind)
        ),
        arns,
        st.one_of(st.uuids().map(str), st.text(max_size=130), json_ish),
        st.integers(0, 4),
    ),
)


def only_documented(call: Callable[[], Any]) -> None:
    """Run ``call``; a documented exception is a fine answer, anything else fails the test."""
    with contextlib.suppress(*DOCUMENTED):
        call()


@pytest.fixture
def manager(aws: Aws) -> SiblingsManager:
    env = build_env(aws.endpoint_url, aws.recorder)
    return SiblingsManager(
        {"use_dynamodb": False, "auto_spawning": True, "invoke_max_attempts": 1, "payload_bucket": "b"},
        config=env.config(),
        session=env.session,
    )


@FUZZ
@given(
    context=contexts,
    payload=st.one_of(json_ish, st.text(max_size=60)),
    event=st.one_of(st.none(), events),
    force=json_ish,
)
def test_spawn_sibling(manager: SiblingsManager, context: Any, payload: Any, event: Any, force: Any) -> None:
    only_documented(lambda: manager.spawn_sibling(context, payload, force, event=event))


def test_a_10000_level_payload_is_a_value_error(manager: SiblingsManager) -> None:
    """Not a raw RecursionError (hypothesis cannot print such a value, so it is its own test)."""
    with pytest.raises(ValueError, match="nests too deeply"):
        manager.spawn_sibling(SimpleNamespace(invoked_function_arn=ARN), deep(10_000))


@FUZZ
@given(event=events, context=st.one_of(st.none(), contexts))
@example(
    event={METADATA_KEY: {"chain_id": "c", "generation": 1, "payload": {"s3": {"bucket": "b", "key": "k"}}}},
    context=SimpleNamespace(invoked_function_arn=ARN, aws_request_id="r-1"),
)
def test_load_payload_and_invocation(manager: SiblingsManager, event: Any, context: Any) -> None:
    only_documented(lambda: manager.load_payload(event, context))
    only_documented(lambda: load_payload(event, context, config=manager.config, claims=manager.runs,
                                         s3_client=manager._clients.get("s3")))
    only_documented(lambda: Invocation(event, context, manager=manager))


@FUZZ
@given(name=st.one_of(st.just(FUNCTION), st.just(f"{FUNCTION}:live"), arns, json_ish),
       minutes=st.one_of(st.integers(-5, 2000), json_ish),
       options=st.dictionaries(st.sampled_from(["cache_ttl_seconds", "minutes_back", "lease_seconds",
                                                "memory_cache_size", "table_name", "unknown_key"]),
                               json_ish, max_size=2))
def test_estimate_concurrency(aws: Aws, name: Any, minutes: Any, options: dict[str, Any]) -> None:
    options = {**options, "endpoint_url": aws.endpoint_url, "region_name": REGION, "use_dynamodb": False}
    only_documented(lambda: estimate_concurrency(name, minutes, **options))


field_names = [name for name in SiblingsConfig.__dataclass_fields__ if name != "extra"]


@settings(max_examples=300, deadline=None)
@given(overrides=st.dictionaries(st.sampled_from(field_names), st.one_of(json_ish, st.text(max_size=12))),
       environ=st.dictionaries(st.sampled_from([f"SIBLINGS_{n.upper()}" for n in field_names]),
                               st.text(max_size=12)))
def test_config(overrides: dict[str, Any], environ: dict[str, str]) -> None:
    only_documented(lambda: SiblingsConfig.from_env(environ, **overrides))
