"""Is an EventBridge Scheduler schedule named in the configuration enabled? Asked and cached.

EventBridge Scheduler schedules (today's usual way to run a function on a timer) are not
EventBridge rules: ``ListRuleNamesByTarget`` never finds them, and Scheduler has no
"schedules by target" call. So the configuration names them (``trigger_schedules``, each
``group/name``, or ``name`` in the ``default`` group) and each is read with
``scheduler:GetSchedule`` (https://docs.aws.amazon.com/scheduler/latest/APIReference/API_GetSchedule.html).
A named schedule counts as a trigger of an execution when its ``State`` is ``ENABLED`` and its
target is the ARN the execution was invoked with, exactly as a rule's must be
(:mod:`siblings.rules`). A schedule that does not exist is not a trigger.

Each schedule's answer is cached like the rule state (key :func:`siblings.keys.schedule_key`,
``rules_cache_ttl_seconds``, both tiers): one ``GetSchedule`` per schedule per TTL window
fleet-wide. ``GetSchedule`` has its own per-account rate quota (EventBridge Scheduler quotas:
https://docs.aws.amazon.com/scheduler/latest/UserGuide/scheduler-quotas.html).
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.attributes import UnicodeAttribute

from estimator.item_kinds import ItemKind, ItemValue
from siblings.keys import SCHEDULE_PREFIX

DEFAULT_GROUP = "default"
# Scheduler's name and group name pattern: 1-64 of [0-9a-zA-Z-_.].
_NAME = re.compile(r"^[0-9a-zA-Z\-_.]{1,64}$")


def parse_schedule(text: str) -> tuple[str, str]:
    """``(group, name)`` of ``group/name`` (or ``name``, in the default group); ``ValueError``
    for anything else."""
    group, _, name = text.rpartition("/")
    group = group or DEFAULT_GROUP
    if not (_NAME.match(group) and _NAME.match(name)):
        raise ValueError(
            f"trigger_schedules entries are 'group/name' or 'name' (1-64 of [0-9a-zA-Z-_.]), got {text!r}"
        )
    return group, name


def normalize_schedule(text: str) -> str:
    """``group/name`` of an entry, the default group written out."""
    group, name = parse_schedule(text)
    return f"{group}/{name}"


class ScheduleState(ItemValue):
    """A cached schedule state as :class:`ScheduleLookup` writes it (null state: no such
    schedule)."""

    state = UnicodeAttribute(null=True)
    target = UnicodeAttribute(null=True)


class ScheduleItem(ItemKind):
    """``schedule#<account>:<region>:<group>/<name>``: one EventBridge Scheduler schedule."""

    prefix = SCHEDULE_PREFIX
    schema = ScheduleState


class ScheduleLookup:
    """Answers "what is this schedule's state and target?" from EventBridge Scheduler."""

    def __init__(self, scheduler_client: Any) -> None:
        self._scheduler = scheduler_client

    def state(self, schedule: str) -> dict[str, Any]:
        """``{"state": "ENABLED" | "DISABLED" | None, "target": arn or None}``; ``None`` state:
        the schedule does not exist. Other AWS errors propagate (the cache turns them into
        ``LookupFailed`` or serves a stale answer)."""
        group, name = parse_schedule(schedule)
        try:
            described = self._scheduler.get_schedule(GroupName=group, Name=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return {"state": None, "target": None}
            raise
        target = (described.get("Target") or {}).get("Arn")
        return {"state": described.get("State"), "target": target}
