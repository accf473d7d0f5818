"""``siblings local`` and ``siblings simulate --handler``: your own handler on the embedded AWS."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from siblings.local.account import AccountSettings, LocalAccount
from siblings.local.handler_run import HandlerNotFound, handler_factory, run_handler
from siblings.local.middleware import Middleware, compose
from siblings.local.runtime import LocalLambdaRuntime
from siblings.local.settings import FaultKind, FleetSettings

USAGE_EXIT = 2


def run_local(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Serve until Ctrl-C (or ``stop``): print the ``export`` lines, then block."""
    settings = AccountSettings(function_name=args.function_name, table_name=args.table_name, port=args.port)
    try:
        factory = handler_factory(args.handler_spec) if args.handler_spec else None
    except HandlerNotFound as exc:
        print(f"siblings local: {exc}", file=sys.stderr)
        return USAGE_EXIT
    with LocalAccount(settings) as account:
        if factory is not None:
            account.register(factory=factory)
        for name, value in account.environment().items():
            print(f"export {name}={value}")
        print(
            f"# table {settings.table_name!r}, function {account.function_arn} and its ENABLED "
            f"rule {settings.rule_name!r} are ready. Ctrl-C stops the server.",
            flush=True,
        )
        waiter = stop or threading.Event()
        try:
            while not waiter.wait(0.5):
                pass
        except KeyboardInterrupt:
            print("# stopped", file=sys.stderr)
    return 0


def seed_event(text: str) -> dict[str, Any]:
    """``--event``: a JSON object, or a file holding one; ``ValueError`` (one line) otherwise."""
    source = text
    if not text.lstrip().startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"--event: not a JSON object and no such file: {text}")
        source = path.read_text()
    try:
        event = json.loads(source)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--event: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(event, dict):
        raise ValueError("--event must be a JSON object")
    return event


def _faults(settings: FleetSettings) -> Any:
    from siblings.local.faults import ThrottleInjector
    from siblings.local.windows import WindowFaults

    def build(runtime: LocalLambdaRuntime) -> Middleware:
        throttles = ThrottleInjector(
            settings.fault_rate,
            seed=settings.seed,
            rates={
                ("lambda", "Invoke"): settings.rate(FaultKind.INVOKE_THROTTLE),
                ("monitoring", "GetMetricData"): settings.rate(FaultKind.METRIC_DATA_THROTTLE),
            },
        )
        windows = WindowFaults(
            runtime,
            crash_rate=settings.rate(FaultKind.CRASH_AFTER_INVOKE),
            lost_reply_rate=settings.rate(FaultKind.LOST_INVOKE_REPLY),
            seed=settings.seed,
        )
        return compose(throttles.wrap, windows.wrap)

    return build


def run_simulate_handler(args: argparse.Namespace, settings: FleetSettings) -> int:
    """Run ``--handler`` from ``--event`` with the run's faults; 0 verified, 1 not, 2 bad input."""
    import os

    try:
        event = seed_event(args.event)
        factory = handler_factory(args.handler_spec)
    except (ValueError, HandlerNotFound) as exc:
        print(f"siblings simulate: {exc}", file=sys.stderr)
        return USAGE_EXIT
    account = LocalAccount(
        AccountSettings(timeout_seconds=settings.invocation_seconds), faults=_faults(settings)
    )
    saved = dict(os.environ)
    with account:
        os.environ.update(account.environment())
        os.environ["SIBLINGS_MAX_GENERATIONS"] = str(settings.max_generations)
        try:
            factory()  # one cold start up front: an import error is one line, before any run
            check = run_handler(
                account,
                args.handler_spec,
                event,
                timeout=settings.timeout_seconds,
                max_generations=settings.max_generations,
            )
        except HandlerNotFound as exc:
            print(f"siblings simulate: {exc}", file=sys.stderr)
            return USAGE_EXIT
        finally:
            os.environ.clear()
            os.environ.update(saved)
    _print_check(args, check.to_dict())
    return 0 if check.passed else 1


def _print_check(args: argparse.Namespace, document: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(document, indent=2))
        return
    print(
        f"{args.handler_spec}: {document['invocations']} execution(s), {document['steps']} chain "
        f"step(s) worked, max generation {document['max_generation']}, "
        f"{document['duplicates_stopped']} duplicate(s) stopped, {document['failed']} failed"
    )
    print(
        "verified (no record checks: the handler's own records are unknown to the simulator): "
        "each chain step worked once, no chain past max_generations, no spawn lost"
    )
    for problem in document["problems"]:
        print(f"  - {problem}")
    print("verification:", "PASSED" if not document["problems"] else "FAILED")
