"""``siblings simulate``: a local fleet of self-continuing workers, verified exactly-once.

Everything runs in this process against an embedded moto server on 127.0.0.1, behind AWS's
default quotas: no AWS account. See :mod:`siblings.local.fleet` for what is emulated and how.
The command exits non-zero when the verification fails: a record processed zero or two times,
a chain past ``max_generations``, a spawn lost, or a chain step whose work started in two
executions.

Also runnable as ``python -m siblings.local.simulate``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from siblings.local.errors import StackDeployFailed
from siblings.local.fleet import Fleet
from siblings.local.options import add_arguments, settings_from
from siblings.local.settings import FleetSettings
from siblings.local.summary import summary, to_json


def run(args: argparse.Namespace) -> int:
    """Run the simulation; 0 when the verification passed, 1 when it failed, 2 on bad input."""
    from rich.console import Console
    from rich.live import Live

    from siblings.local.report import live_view, plot_timeline, summary_table

    try:
        settings = settings_from(args)
        _check_paths(args, settings)
    except ValueError as exc:
        print(f"siblings simulate: {exc}", file=sys.stderr)
        return 2
    if args.handler_spec:
        from siblings.local.handler_cli import run_simulate_handler

        with _quiet_library_logs():
            return run_simulate_handler(args, settings)
    console = Console()
    progress = Console(stderr=True)
    try:
        with _quiet_library_logs() as logged, Fleet(settings) as fleet:
            if args.json or not progress.is_terminal:
                verification = fleet.run()
            else:
                with Live(console=progress, refresh_per_second=4, transient=True) as live:
                    verification = fleet.run(lambda f, sample: live.update(live_view(f, sample)))
            document = summary(fleet, verification)
            document["library_log"] = dict(logged)
            if args.plot:
                document["plot"] = str(plot_timeline(fleet, args.plot))
    except StackDeployFailed as exc:  # raised only while provisioning, before any run
        print(f"siblings simulate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(to_json(document))
    else:
        console.print(summary_table(document))
        if args.plot:
            console.print(f"timeline written to {args.plot}")
    return 0 if verification.ok else 1


def _check_paths(args: argparse.Namespace, settings: FleetSettings) -> None:
    """Every path the run reads or writes, checked before it starts: not after a whole run."""
    if settings.template is not None and not settings.template.is_file():
        raise ValueError(f"template not found: {settings.template}")
    if not args.handler_spec and not settings.worker_file.is_file():
        raise ValueError(f"--worker-file: no such file: {settings.worker_file}")
    if args.plot is not None and not args.plot.resolve().parent.is_dir():
        raise ValueError(f"--plot: directory {args.plot.parent} does not exist")


class _CountingHandler(logging.Handler):
    def __init__(self, counts: Counter[str]) -> None:
        super().__init__(logging.INFO)
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname.lower()] += 1


@contextmanager
def _quiet_library_logs() -> Iterator[Counter[str]]:
    """Count the library's log lines instead of printing them over the live view.

    Failed spawns are logged at ERROR; in a fault-injected run they are expected (the handler
    raises and Lambda retries), and the summary counts them.
    """
    counts: Counter[str] = Counter()
    handler = _CountingHandler(counts)
    loggers = [logging.getLogger(name) for name in ("siblings", "estimator")]
    saved = [(logger, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield counts
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate


def main(argv: list[str] | None = None) -> int:
    """``python -m siblings.local.simulate``."""
    parser = argparse.ArgumentParser(prog="siblings simulate", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
