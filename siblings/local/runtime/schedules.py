"""EventBridge Scheduler's side of the local runtime: one-time schedules fire when due.

moto keeps schedules (``CreateSchedule``, ``GetSchedule``, ``ListSchedules``,
``DeleteSchedule``) but never fires one. :class:`ScheduleFirer` does what Scheduler does for
the schedules a deferral makes (:mod:`siblings.defer`): when an ``at(...)`` expression is due
on the firer's clock, the target (a Lambda function ARN) is invoked asynchronously with the
schedule's ``Input``, as Scheduler's templated Lambda target does, and a schedule with
``ActionAfterCompletion: DELETE`` is deleted after it fired
(https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#one-time).
Everything goes through the server's own API, so what the library wrote is what fires.
Only ``at(...)`` schedules in the ``ENABLED`` state are fired; ``rate``/``cron`` are not
modelled. Scheduler delivers at least once: :meth:`ScheduleFirer.fire_due` with
``redeliver=True`` fires without deleting, for tests of a second delivery.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from estimator.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

Invoke = Callable[[str, Any], Any]
"""``invoke(function_arn, event)``: an asynchronous invocation (the runtime's ``invoke_async``)."""


def due_at(expression: str) -> float | None:
    """Epoch seconds of an ``at(yyyy-mm-ddThh:mm:ss)`` expression (UTC), else ``None``."""
    if not (expression.startswith("at(") and expression.endswith(")")):
        return None
    try:
        moment = datetime.strptime(expression[3:-1], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


class ScheduleFirer:
    """Fires the server's due one-time schedules through ``invoke`` (on ``clock``)."""

    def __init__(self, scheduler: Any, invoke: Invoke, clock: Clock = SYSTEM_CLOCK) -> None:
        self.scheduler = scheduler
        self.invoke = invoke
        self.clock = clock
        self.fired: list[str] = []
        """Names of the schedules fired, in order."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _schedules(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.scheduler.get_paginator("list_schedules").paginate(State="ENABLED"):
            found.extend(page.get("Schedules", []))
        return found

    def fire_due(self, redeliver: bool = False) -> list[str]:
        """Fire every due schedule once; returns their names."""
        now = self.clock.now()
        fired = []
        for summary in self._schedules():
            name, group = summary["Name"], summary.get("GroupName", "default")
            schedule = self.scheduler.get_schedule(Name=name, GroupName=group)
            due = due_at(schedule.get("ScheduleExpression", ""))
            if due is None or due > now:
                continue
            target = schedule["Target"]
            self.invoke(target["Arn"], json.loads(target.get("Input") or "{}"))
            fired.append(name)
            if not redeliver and schedule.get("ActionAfterCompletion") == "DELETE":
                self.scheduler.delete_schedule(Name=name, GroupName=group)
        self.fired.extend(fired)
        return fired

    def start(self, interval: float = 0.2) -> ScheduleFirer:
        """Fire due schedules every ``interval`` seconds on a thread, until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(interval):  # a real wait: this is the server's own pace
                try:
                    self.fire_due()
                except Exception as exc:  # keep firing later ones; say what went wrong
                    log.warning("firing schedules failed: %s", exc)

        self._thread = threading.Thread(target=loop, name="local-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread started by :meth:`start`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
