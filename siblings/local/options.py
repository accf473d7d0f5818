"""The options of ``siblings simulate``, and the :class:`FleetSettings` they give.

The ``siblings`` command imports this module to build its parser, so it imports nothing of the
simulator beyond :mod:`siblings.local.settings`.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from siblings.local.settings import DEFAULT_WORKER_FILE, FaultKind, FleetSettings

# Checked without importing (the CLI imports this module for every command): without the
# 'local' extra, importing this module fails and the CLI says which extra to install.
for _required in ("moto", "rich"):
    if importlib.util.find_spec(_required) is None:
        raise ImportError(f"siblings simulate needs the 'local' extra: {_required} is missing")

_DEFAULTS = FleetSettings()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the command's options to ``parser``."""
    _add_workload(parser)
    _add_guards(parser)
    _add_faults(parser)
    _add_run(parser)


def _add_workload(parser: argparse.ArgumentParser) -> None:
    workload = parser.add_argument_group("workload")
    workload.add_argument("--chains", type=int, default=_DEFAULTS.chains,
                          help="independent cursors (default %(default)s)")
    workload.add_argument("--records", type=int, default=_DEFAULTS.records,
                          help="records per chain (default %(default)s)")
    workload.add_argument("--record-seconds", type=float, default=_DEFAULTS.record_seconds,
                          help="work per record (default %(default)s)")
    workload.add_argument("--invocation-seconds", type=float,
                          default=_DEFAULTS.invocation_seconds,
                          help="each execution's deadline, the function timeout "
                               "(default %(default)s)")
    workload.add_argument("--shutdown-seconds", type=float, default=_DEFAULTS.shutdown_seconds,
                          help="time kept back to commit and spawn (default %(default)s)")


def _add_guards(parser: argparse.ArgumentParser) -> None:
    guards = parser.add_argument_group("guards and limits")
    guards.add_argument("--max-concurrency", type=int, default=_DEFAULTS.max_concurrency,
                        help="refuse to spawn at or above this estimated concurrency; 0 turns "
                             "the guard off (default %(default)s)")
    guards.add_argument("--max-generations", type=int, default=_DEFAULTS.max_generations,
                        help="longest chain of siblings (default %(default)s)")
    guards.add_argument("--reserved-concurrency", type=int, default=None,
                        help="the function's reserved concurrency (default: none)")
    guards.add_argument("--defer", action="store_true",
                        help="defer spawns refused for capacity (a one-time schedule fired by "
                             "the local scheduler) instead of parking the chain")
    guards.add_argument("--recursive-loop", choices=("allow", "terminate"),
                        default=_DEFAULTS.recursive_loop.lower(),
                        help="the function's RecursiveLoop: allow (as template.yaml deploys it) "
                             "or terminate (Lambda's default: every spawn is refused before "
                             "hand-off, the schedule resumes the parked chains; default "
                             "%(default)s)")


def _add_faults(parser: argparse.ArgumentParser) -> None:
    faults = parser.add_argument_group("faults")
    faults.add_argument("--fault-rate", type=float, default=_DEFAULTS.fault_rate,
                        help="share of Invoke calls answered 429, of GetMetricData calls "
                             "throttled, of handler attempts that crash, of chain steps whose "
                             "parent crashes between its Invoke and its spawn record, and of "
                             "chain steps whose Invoke reply is lost (default %(default)s)")
    faults.add_argument("--fault", action="append", default=[], metavar="KIND=RATE",
                        help="the rate of one kind of fault, instead of --fault-rate; kinds: "
                             + ", ".join(FaultKind) + " (repeatable)")
    faults.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                        help="seed of request ids and faults (default %(default)s)")


def _add_run(parser: argparse.ArgumentParser) -> None:
    run = parser.add_argument_group("run")
    run.add_argument("--time-scale", type=float, default=_DEFAULTS.time_scale,
                     help="CloudWatch time runs this many times faster than the wall clock, so "
                          "one-minute metrics fit in a short demo (default %(default)s)")
    run.add_argument("--timeout", type=float, default=_DEFAULTS.timeout_seconds,
                     help="give up after this many seconds: running executions finish, "
                          "queued ones are not started (default %(default)s)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--plot", type=Path, metavar="FILE",
                     help="write a PNG timeline: true vs estimated concurrency, spawns")
    run.add_argument("--worker-file", type=Path, default=DEFAULT_WORKER_FILE,
                     help="the handler module to run (default: the packaged "
                          "siblings/local/workers/cursor_worker.py)")
    yours = parser.add_argument_group("your handler (instead of the demo's fleet)")
    yours.add_argument("--handler", dest="handler_spec", metavar="MODULE:FUNCTION",
                       help="run this handler (e.g. my_app.handler:lambda_handler, importable from "
                            "the current directory) in the local runtime, chained from --event")
    yours.add_argument("--event", default="{}", metavar="JSON|FILE",
                       help="the seed event of --handler: a JSON object or a file holding one")
    run.add_argument("--template", type=Path, metavar="PATH",
                     help="deploy this SAM template (e.g. template.yaml) into the embedded "
                          "CloudFormation first and use its stack's shared table and payload "
                          "bucket instead of creating them")
    run.add_argument("--template-table-name", default=_DEFAULTS.template_table_name,
                     help="the stack's SiblingsTableName parameter (default %(default)s)")
    # Test hook: plant a lost record, to prove the verification catches it.
    run.add_argument("--drop-record", metavar="CHAIN:INDEX", help=argparse.SUPPRESS)


def settings_from(args: argparse.Namespace) -> FleetSettings:
    """The :class:`FleetSettings` of parsed arguments."""
    drop = None
    rates = tuple(_fault_rate(text) for text in args.fault)
    if args.drop_record:
        chain_id, _, index = str(args.drop_record).rpartition(":")
        drop = (chain_id, int(index))
    return FleetSettings(
        chains=args.chains,
        records=args.records,
        record_seconds=args.record_seconds,
        invocation_seconds=args.invocation_seconds,
        shutdown_seconds=args.shutdown_seconds,
        max_concurrency=args.max_concurrency or None,
        max_generations=args.max_generations,
        reserved_concurrency=args.reserved_concurrency,
        defer=args.defer,
        fault_rate=args.fault_rate,
        fault_rates=rates,
        seed=args.seed,
        time_scale=args.time_scale,
        timeout_seconds=args.timeout,
        worker_file=args.worker_file,
        drop_record=drop,
        template=args.template,
        template_table_name=args.template_table_name,
        recursive_loop=str(args.recursive_loop).capitalize(),
    )


def _fault_rate(text: str) -> tuple[FaultKind, float]:
    """``KIND=RATE`` of ``--fault``; ``ValueError`` naming what is wrong."""
    kind, _, rate = text.partition("=")
    try:
        return FaultKind(kind.strip()), float(rate)
    except ValueError:
        raise ValueError(
            f"--fault takes KIND=RATE with KIND one of {', '.join(FaultKind)}, got {text!r}"
        ) from None


def add_local_arguments(parser: argparse.ArgumentParser) -> None:
    """``siblings local``'s options."""
    parser.add_argument(
        "--port", type=int, default=4566, help="port on 127.0.0.1 (0: any free one; default 4566)"
    )
    parser.add_argument(
        "--function-name", default="my-function", help="the function to create (default %(default)s)"
    )
    parser.add_argument(
        "--table-name", default="lambda-siblings", help="the shared table (default %(default)s)"
    )
    parser.add_argument(
        "--handler",
        dest="handler_spec",
        metavar="MODULE:FUNCTION",
        help="run this handler for the function's Invokes (without it moto answers them, and nothing runs)",
    )
