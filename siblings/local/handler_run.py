"""Run *any* handler (``package.module:function``) in the local runtime and verify its chain.

A handler in sosw's shape (``SiblingsManager().spawn_sibling(context, payload)``) or ours
(:class:`~siblings.Invocation`) is imported afresh for each cold start, as Lambda runs a
module's top level once per container, with the environment of a :class:`LocalAccount`
pointing boto3 and the library at the embedded server. A seed event starts it; its siblings run
as they would on Lambda. What can be verified without knowing the handler's own records:

* every chain step did its work in one execution at most (a second execution of a step must be
  stopped as a duplicate: ``DuplicateSibling`` raised by ``load_payload``, or
  ``Invocation.duplicate``);
* no chain ran past ``max_generations`` (no runaway);
* no spawn was lost: every sibling the runtime accepted ran to completion, and every execution
  that reported ``spawned`` has a sibling.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from siblings.errors import DuplicateSibling, SiblingsError
from siblings.local.account import LocalAccount
from siblings.local.runtime import Handler, InvocationRecord, InvocationStatus
from siblings.metadata import metadata_of


class HandlerNotFound(SiblingsError):
    """``--handler`` names no importable module or no callable in it."""


def handler_factory(spec: str) -> Callable[[], Handler]:
    """A cold-start factory for ``package.module:function``: each call imports the module anew.

    Raises :class:`HandlerNotFound` (one line) before anything runs when the module or the
    function cannot be found.
    """
    module_name, _, attribute = spec.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: the project's root is importable
    if not module_name or not attribute:
        raise HandlerNotFound(f"--handler must be package.module:function, got {spec!r}")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise HandlerNotFound(f"cannot find module {module_name!r}: {exc}") from exc
    if found is None or found.origin is None or not found.has_location:
        raise HandlerNotFound(
            f"no module {module_name!r} on the path (run from its project's root, or set PYTHONPATH)"
        )
    origin = found.origin

    def cold_start() -> Handler:
        spec_ = importlib.util.spec_from_file_location(module_name, origin)
        assert spec_ is not None and spec_.loader is not None
        module = importlib.util.module_from_spec(spec_)
        spec_.loader.exec_module(module)
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise HandlerNotFound(f"{module_name} has no function {attribute!r}")
        return handler  # type: ignore[no-any-return]

    return cold_start


class DuplicateWatch(logging.Handler):
    """Notes the executions stopped as duplicates of their chain step.

    ``load_payload`` raises :class:`DuplicateSibling`; ``Invocation`` catches it and logs it on
    the ``siblings`` logger. Either way the execution did no work: :meth:`wrap` marks it.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.stopped: set[str] = set()
        self._current = threading.local()
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """A warning carrying a :class:`DuplicateSibling` marks the running execution."""
        args = record.args if isinstance(record.args, tuple) else ()
        if any(isinstance(arg, DuplicateSibling) for arg in args):
            self._mark()

    def _mark(self) -> None:
        request_id = getattr(self._current, "request_id", None)
        if request_id is not None:
            with self._lock:
                self.stopped.add(request_id)

    def wrap(self, factory: Callable[[], Handler]) -> Callable[[], Handler]:
        """``factory`` with each execution's request id known to the watch."""

        def cold_start() -> Handler:
            handler = factory()

            def run(event: Any, context: Any) -> Any:
                self._current.request_id = getattr(context, "aws_request_id", None)
                try:
                    return handler(event, context)
                except DuplicateSibling:
                    self._mark()
                    return {"duplicate": True}
                finally:
                    self._current.request_id = None

            return run

        return cold_start

    @contextmanager
    def installed(self) -> Iterator[DuplicateWatch]:
        """Listen on the ``siblings`` logger for the duration."""
        logger = logging.getLogger("siblings")
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)


@dataclass
class ChainCheck:
    """What a handler's run showed, and the problems found (none: verification passed)."""

    invocations: int = 0
    steps: int = 0
    max_generation: int = 0
    duplicates_stopped: int = 0
    failed: int = 0
    finished: bool = True
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-ready values."""
        return {
            "invocations": self.invocations,
            "steps": self.steps,
            "max_generation": self.max_generation,
            "duplicates_stopped": self.duplicates_stopped,
            "failed": self.failed,
            "finished": self.finished,
            "passed": self.passed,
            "problems": list(self.problems),
        }


def check_chain(
    invocations: list[InvocationRecord],
    stopped: set[str],
    max_generations: int,
    *,
    finished: bool = True,
) -> ChainCheck:
    """Verify what can be verified of an arbitrary handler's chain (see the module docstring)."""
    check = ChainCheck(invocations=len(invocations), finished=finished)
    working: dict[tuple[str, int], list[str]] = defaultdict(list)
    children: dict[str, int] = defaultdict(int)
    for inv in invocations:
        metadata = _metadata(inv)
        step = (metadata.chain_id, metadata.generation) if metadata else (inv.request_id, 0)
        check.max_generation = max(check.max_generation, step[1])
        if metadata is not None and metadata.parent_request_id:
            children[metadata.parent_request_id] += 1
        if inv.request_id in stopped:
            check.duplicates_stopped += 1
        else:
            working[step].append(inv.request_id)
        if inv.status is InvocationStatus.FAILED:
            check.failed += 1
    check.steps = len(working)
    twice = [f"{c}#{g}" for (c, g), ids in sorted(working.items()) if len(ids) > 1]
    if twice:
        check.problems.append(f"{len(twice)} chain step(s) did their work in two executions: {twice[:3]}")
    if check.max_generation > max_generations:
        check.problems.append(
            f"a chain reached generation {check.max_generation} > max_generations {max_generations}"
        )
    lost = [inv.request_id for inv in invocations if _reports_spawned(inv) and not children[inv.request_id]]
    if lost:
        check.problems.append(f"{len(lost)} spawn(s) reported but no sibling ran: {lost[:3]}")
    if check.failed:
        check.problems.append(
            f"{check.failed} execution(s) failed after Lambda's retries (their work is lost)"
        )
    if not finished:
        check.problems.append("the run did not finish within --timeout (executions still queued or running)")
    return check


def _metadata(inv: InvocationRecord) -> Any:
    try:
        return metadata_of(inv.event)
    except ValueError:
        return None


def _reports_spawned(inv: InvocationRecord) -> bool:
    result = inv.result
    return isinstance(result, Mapping) and result.get("spawned") is True


def run_handler(
    account: LocalAccount, spec: str, event: Mapping[str, Any], *, timeout: float, max_generations: int
) -> ChainCheck:
    """Register ``spec`` on ``account``'s function, start it with ``event``, wait, verify."""
    watch = DuplicateWatch()
    account.register(factory=watch.wrap(handler_factory(spec)))
    with watch.installed():
        account.invoke(event)
        finished = account.wait(timeout)
    return check_chain(account.invocations(), watch.stopped, max_generations, finished=finished)
