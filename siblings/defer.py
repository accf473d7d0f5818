"""Defer instead of refuse: a spawn that only a capacity guard refused starts later, by itself.

With ``defer_when_busy`` (or ``spawn_sibling(..., defer=True)``), when the concurrency or the
account headroom guard is the only one that says no (:data:`~siblings.result.DEFERRABLE`), the
spawn is handed to an EventBridge Scheduler one-time schedule instead of being refused:

* ``ScheduleExpression: at(<UTC time>)``, ``ActionAfterCompletion: DELETE``, no flexible window,
  in ``defer_schedule_group``; its target is the function (the ARN it was invoked with), through
  ``defer_role_arn`` (a role Scheduler assumes, allowed ``lambda:InvokeFunction``; the template
  creates it);
* its input is a *relay* event, ``{"__siblings_deferred__": {"v": 1, "deferrals": n, "forced":
  <bool>, "event": <the sibling's event>}}``: when it fires, the function's ``load_payload``
  sees it and decides the spawn of that same chain step again, through every guard (the kill
  switch, the generation limit and the chain budget apply when it fires; a forced spawn stays
  forced), then raises :class:`StepRelayed` so that the relaying execution does no work of its
  own, or :class:`RelayFailed` when a guard could not be read (or the Invoke failed), so that
  Lambda's retry of the async event decides it again instead of the step being lost;
* the delay of the ``n``-th deferral of a step is ``defer_base_seconds x 2^(n-1)``, capped at
  ``defer_max_seconds``, jittered to between half and all of it (a fleet deferred together
  does not come back together); at most ``max_deferrals`` per step, then the capacity refusal
  stands.

The chain keeps its position (the step's generation and chain start are unchanged), and the
step's spawn claim still makes it spawn once: the deferral releases the claim (no deferral,
the refusal stands, when the release fails: the relay could not take the claim over), the
relay (or a retried parent) takes it again, and the second of them finds it done. Scheduler delivers at
least once; a second delivery is a duplicate like any other. The schedule name is derived from
chain, step and deferral number, so a retried parent re-deferring gets ``ConflictException``:
already scheduled. The result of a deferral is truthy, with ``deferred=True`` and
``deferred_until``. Never deferred: the kill switch, the generation limit, the chain budget,
the rule state, a guard error, bad input.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from estimator.aws import Clients
from estimator.clock import SYSTEM_CLOCK, Clock
from siblings.config import SiblingsConfig
from siblings.errors import DuplicateSibling, SiblingsError
from siblings.metadata import METADATA_KEY, ChainMetadata, parse_metadata
from siblings.payload import EncodedEvent, upload
from siblings.result import DEFERRABLE, Reason, SpawnResult
from siblings.spawn_call import SpawnCall

log = logging.getLogger(__name__)

DEFERRED_KEY = "__siblings_deferred__"
"""The one key of a relay event (the input of a deferral's schedule)."""
# Target.Input (https://docs.aws.amazon.com/scheduler/latest/APIReference/API_Target.html) is
# delivered as the function's event; kept to EventBridge's event size, a conservative bound. A
# larger payload is offloaded to S3 before it reaches here (a pointer is small), or the
# capacity refusal stands.
INPUT_LIMIT_BYTES = 256 * 1024
_NAME_PREFIX = "siblings-"


class StepRelayed(DuplicateSibling):
    """This execution was started by a deferral's schedule: it decided the deferred spawn
    (:attr:`result`) and must do no work of its own. A :class:`DuplicateSibling`, so that
    handlers that return on one return on this too."""

    def __init__(self, metadata: ChainMetadata, runner: str | None, result: SpawnResult) -> None:
        self.result = result
        super().__init__(
            metadata.chain_id, metadata.generation, runner, f"relayed a deferred spawn: {result.reason}"
        )


class RelayFailed(SiblingsError):
    """A deferral's relay could not decide its spawn (a guard could not be read): raised from
    ``load_payload`` so that the execution fails and Lambda retries the event (the schedule's
    step would be lost otherwise). :attr:`result` is the refusal."""

    def __init__(self, metadata: ChainMetadata, result: SpawnResult) -> None:
        self.result = result
        super().__init__(
            f"relay of chain {metadata.chain_id!r} step {metadata.generation} failed: "
            f"{result.reason} ({result.detail}); failing the execution so that Lambda retries it"
        )


def defer_delay(deferral: int, config: SiblingsConfig, rand: Callable[[], float] = random.random) -> float:
    """Seconds until the ``deferral``-th deferral (1, 2...) of a step fires: exponential,
    capped, jittered between half and all of it."""
    full = min(config.defer_base_seconds * 2 ** (deferral - 1), config.defer_max_seconds)
    return full / 2 + rand() * full / 2


def schedule_name(chain_id: str, generation: int, deferral: int) -> str:
    """A schedule name (1-64 of ``[0-9A-Za-z_.-]``) unique to one deferral of one step."""
    digest = hashlib.sha256(f"{chain_id}#{generation}#{deferral}".encode()).hexdigest()
    return f"{_NAME_PREFIX}{digest[:40]}-{generation}-{deferral}"[:64]


def at_expression(epoch: float) -> str:
    """Scheduler's one-time expression for ``epoch`` (UTC, rounded up to the second)."""
    return "at(" + datetime.fromtimestamp(math.ceil(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def relay_of(event: Any) -> tuple[dict[str, Any], int, bool] | None:
    """``(sibling event, deferrals so far, forced)`` of a relay event, ``None`` for any other
    event; ``ValueError`` for a malformed one (an event is input)."""
    if not isinstance(event, Mapping) or DEFERRED_KEY not in event:
        return None
    raw = event[DEFERRED_KEY]
    if not isinstance(raw, Mapping) or raw.get("v") != 1:
        raise ValueError(f"event[{DEFERRED_KEY!r}] must be an object with v=1")
    deferrals, inner = raw.get("deferrals"), raw.get("event")
    if isinstance(deferrals, bool) or not isinstance(deferrals, int) or not 1 <= deferrals <= 100:
        raise ValueError(f"event[{DEFERRED_KEY!r}]['deferrals'] must be an int in 1..100")
    forced = raw.get("forced", False)  # absent in relays scheduled before it was recorded
    if not isinstance(forced, bool):  # a string such as "false" must not switch guards off
        raise ValueError(f"event[{DEFERRED_KEY!r}]['forced'] must be a JSON boolean")
    if not isinstance(inner, Mapping) or METADATA_KEY not in inner:
        raise ValueError(f"event[{DEFERRED_KEY!r}]['event'] must be a sibling event")
    parse_metadata(inner[METADATA_KEY])
    return dict(inner), deferrals, forced


def relay_call(
    call_info: Any, event: dict[str, Any], deferrals: int, now: float, started: float, forced: bool = False
) -> SpawnCall:
    """The spawn call a relay makes: the same step, spawned now (the chain budget counts the
    wait), forced as it was, deferrable again."""
    metadata = parse_metadata(event[METADATA_KEY])
    child = replace(metadata, spawned_at=now)
    body = json.dumps(
        {**event, METADATA_KEY: {**event[METADATA_KEY], **child.to_dict()}}, separators=(",", ":")
    ).encode()
    encoded = EncodedEvent(body=body, payload_bytes=len(body))
    return SpawnCall(call_info, child, encoded, forced, started, defer=True, deferrals=deferrals)


class Deferrer:
    """Turns a capacity refusal into a schedule (see the module docstring)."""

    def __init__(
        self,
        clients: Clients,
        config: SiblingsConfig,
        clock: Clock = SYSTEM_CLOCK,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.clients = clients
        self.config = config
        self.clock = clock
        self.rand = rand

    def defer(self, call: SpawnCall, refusal: SpawnResult) -> SpawnResult | None:
        """The deferred result of ``call`` in place of ``refusal``; ``None`` when it cannot be
        deferred (not asked for, not a capacity refusal, out of deferrals, no role, too large,
        Scheduler failing): then the refusal stands."""
        if not call.defer or refusal.reason not in DEFERRABLE:
            return None
        deferral = call.deferrals + 1
        if deferral > self.config.max_deferrals:
            return None
        if not self.config.defer_role_arn:
            log.warning("defer_when_busy needs defer_role_arn (the role Scheduler invokes with)")
            return None
        inner = json.loads(call.encoded.body)
        fields = {"v": 1, "deferrals": deferral, "forced": call.forced, "event": inner}
        relay = json.dumps({DEFERRED_KEY: fields})
        if len(relay.encode()) > INPUT_LIMIT_BYTES:
            return None
        until = self.clock.now() + defer_delay(deferral, self.config, self.rand)
        try:
            if call.encoded.offloaded:
                upload(call.encoded, self.clients.get("s3"), call.info.function_name)
            self._create(call, deferral, until, relay)
        except Exception as exc:  # the refusal stands: the caller keeps its work
            log.warning("could not defer %s: %s", call.key, exc)
            return None
        limit = self.config.max_deferrals
        detail = f"{refusal.detail}; deferred ({deferral}/{limit}) to {at_expression(until)}"
        return replace(
            refusal,
            spawned=False,
            reason=Reason.DEFERRED,
            deferred=True,
            deferred_until=float(math.ceil(until)),
            deferred_for=str(refusal.reason),
            deferrals=deferral,
            detail=detail,
        )

    def _create(self, call: SpawnCall, deferral: int, until: float, relay: str) -> None:
        name = schedule_name(call.child.chain_id, call.child.generation, deferral)
        try:
            self.clients.get("scheduler").create_schedule(
                Name=name,
                GroupName=self.config.defer_schedule_group,
                ScheduleExpression=at_expression(until),
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={"Arn": call.info.function_arn, "RoleArn": self.config.defer_role_arn, "Input": relay},
                Description=f"lambda-siblings: chain {call.child.chain_id} step {call.child.generation}",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            log.info("schedule %s exists: this deferral was made before (a retried parent)", name)
