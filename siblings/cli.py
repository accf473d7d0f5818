"""The ``siblings`` command: estimates, the shared table, the kill switch, the local demo."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from estimator import AccountLimit, ConcurrencyEstimator, Estimate, LookupFailed, __version__, ensure_table
from estimator.clock import SYSTEM_CLOCK, Clock
from siblings import cli_errors
from siblings.cli_tables import estimate_layout, estimate_rows, print_table, rich_table, when
from siblings.config import SiblingsConfig
from siblings.errors import SiblingsError


def _config(args: argparse.Namespace) -> SiblingsConfig:
    overrides = {
        name: getattr(args, name)
        for name in ("table_name", "endpoint_url", "region_name")
        if getattr(args, name, None) is not None
    }
    return SiblingsConfig.from_env(**overrides)


def _session(config: SiblingsConfig) -> Any:
    import boto3

    return boto3.Session(region_name=config.region_name) if config.region_name else boto3.Session()


def _estimates(
    estimator: ConcurrencyEstimator, args: argparse.Namespace
) -> tuple[dict[str, Estimate], AccountLimit | None]:
    """The estimates asked for, and the account's limit (``None`` when Lambda cannot say)."""
    estimates = estimator.estimate_many(args.functions, args.minutes_back, use_cache=not args.no_cache)
    try:
        limit: AccountLimit | None = estimator.account_limit()
    except LookupFailed as exc:  # the estimates still stand; say why the limit is missing
        reason = cli_errors.one_line_failure(exc, "lambda")
        print(f"siblings estimate: account limit unavailable: {reason}", file=sys.stderr)
        limit = None
    return estimates, limit


def cmd_estimate(args: argparse.Namespace) -> int:
    """``siblings estimate FN [FN ...] [--json | --watch]``."""
    config = _config(args)
    estimator = ConcurrencyEstimator(config, session=_session(config), clock=args.clock)
    minutes = args.minutes_back or config.minutes_back
    title = f"Concurrency, last {minutes} min (account: concurrency / limit)"
    if args.watch:
        return _watch(estimator, args, title)
    estimates, limit = _estimates(estimator, args)
    if args.json:
        account_limit = None if limit is None else limit.concurrent_executions
        document = {name: {**e.to_dict(), "account_limit": account_limit} for name, e in estimates.items()}
        print(json.dumps(document, indent=2))
        return 0
    print_table(title, *estimate_layout(args.wide, estimate_rows(estimates, limit)))
    return 0


def _watch(estimator: ConcurrencyEstimator, args: argparse.Namespace, title: str) -> int:
    """A live table, refreshed when the cached values expire: every read goes through the
    shared cache, so watching adds no CloudWatch call to what the fleet makes anyway."""
    if args.no_cache or args.json:
        raise ValueError("--watch reads through the shared cache: drop --no-cache and --json")
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:
        raise ValueError("--watch needs rich: pip install 'lambda-siblings[watch]'") from None
    clock: Clock = args.clock
    shown = 0
    try:
        with Live(console=Console(), auto_refresh=False) as live:
            while True:
                estimates, limit = _estimates(estimator, args)
                columns, rows = estimate_layout(args.wide, estimate_rows(estimates, limit))
                live.update(rich_table(f"{title}, {when(clock.now())}", columns, rows))
                live.refresh()
                shown += 1
                if args.count and shown >= args.count:
                    return 0
                # The next cache window: when the first value shown stops being fresh.
                expiry = min(e.expires_at for e in estimates.values())
                clock.sleep(max(0.5, expiry - clock.now()))
    except KeyboardInterrupt:
        return 0


def cmd_create_table(args: argparse.Namespace) -> int:
    """``siblings create-table``."""
    config = _config(args)
    created = ensure_table(config, _session(config))
    verb = "created" if created else "already exists; TTL checked"
    print(f"table {config.table_name!r} {verb}")
    return 0


def cmd_kill_switch(args: argparse.Namespace) -> int:
    """``siblings disable|enable|status FN``."""
    from siblings.killswitch import disable_spawning, enable_spawning, spawning_status

    config = _config(args)
    session = _session(config)
    if args.command == "status":
        status = spawning_status(args.function, config=config, session=session)
        if args.json:
            print(json.dumps(status.to_dict(), indent=2))
            return 0
        kill = status.kill
        state = "DISABLED" if kill.disabled else "enabled"
        if kill.corrupt:
            state = "CORRUPT (treated as disabled): rewrite it with `siblings enable` or `disable`"
        print(f"spawning of {kill.function_name}: {state}")
        if kill.changed_at is not None:
            print(f"  changed {when(kill.changed_at)} by {kill.changed_by}: {kill.reason or '-'}")
        legacy = status.legacy_kill
        if legacy is not None:
            said = "disabled" if legacy.disabled else "enabled"
            print(f"  a kill switch of a release before 0.3 says {said}: only versions still on 0.2 "
                  f"read it; for 0.3, run `siblings {'disable' if legacy.disabled else 'enable'} "
                  f"{args.function}` to carry it over")
        if status.rules is None:
            print("  EventBridge rule state: not cached")
        else:
            print(f"  EventBridge rule state (fresh until {when(status.rules_fresh_until)}): "
                  f"{json.dumps(status.rules)}")
        return 0
    change = disable_spawning if args.command == "disable" else enable_spawning
    state_after = change(args.function, reason=args.reason or "", config=config, session=session)
    word = "disabled" if state_after.disabled else "enabled"
    print(f"spawning of {state_after.function_name} {word}")
    return 0


def cmd_chain(args: argparse.Namespace) -> int:
    """``siblings chain CHAIN_ID [--json]``: every step of one chain, in order."""
    from estimator.store import DynamoStore
    from siblings.chain_view import chain_view, format_chain

    config = _config(args)
    view = chain_view(DynamoStore(config, _session(config)), args.chain_id, args.limit)
    if view is None:
        print(f"siblings chain: no chain {args.chain_id!r} in table {config.table_name!r} "
              "(never spawned, older than spawn_record_ttl_seconds, or chain_log off)", file=sys.stderr)
        return 1
    print(json.dumps(view.to_dict(), indent=2) if args.json else "\n".join(format_chain(view)))
    return 0


def cmd_chains(args: argparse.Namespace) -> int:
    """``siblings chains FN [--json]``: the function's recent chains, newest first."""
    from dataclasses import asdict

    from estimator.identity import at_home
    from estimator.store import DynamoStore
    from estimator.validation import parse_function
    from siblings.chain_view import format_chains, recent_chains

    config = _config(args)
    session = _session(config)
    ref = at_home(parse_function(args.function), config, session)
    name = ref.name
    store = DynamoStore(config, session)
    chains = recent_chains(store, ref.scope, args.clock.now(), args.days, args.limit)
    if args.json:
        print(json.dumps({"function": name, "chains": [asdict(c) for c in chains]}, indent=2))
    else:
        print("\n".join(format_chains(name, chains)))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """``siblings simulate``: the local fleet demo."""
    from siblings.local import simulate

    return int(simulate.run(args))


def cmd_local(args: argparse.Namespace) -> int:
    """``siblings local``: the embedded AWS for your own handler, until Ctrl-C."""
    from siblings.local.handler_cli import run_local

    return run_local(args)


def cmd_migrate_check(args: argparse.Namespace) -> int:
    """``siblings migrate-check PATH [PATH ...]``: exit 0 clean, 1 attention, 2 unreadable."""
    from siblings import migrate_check

    return migrate_check.run(args.paths, sys.stdout, sys.stderr, as_json=args.json)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``siblings doctor FN``: one line per pre-flight check; exit 0 only when all pass."""
    from siblings import doctor

    overrides = {
        name: getattr(args, name)
        for name in ("table_name", "endpoint_url", "region_name")
        if getattr(args, name, None) is not None
    }
    session = _session(_config(args))
    return doctor.run(args.function, overrides, session, sys.stdout, principal_arn=args.principal_arn)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``siblings`` command."""
    parser = argparse.ArgumentParser(
        prog="siblings",
        description="Self-continuing AWS Lambda workers: estimates, kill switch, local demo.",
        epilog=cli_errors.exit_status_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log warnings and details")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("--table-name", help="shared DynamoDB table (SIBLINGS_TABLE_NAME)")
    shared.add_argument("--endpoint-url", help="AWS endpoint, e.g. a local moto server")
    shared.add_argument("--region", dest="region_name", help="AWS region")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_estimate(commands, shared)

    create = commands.add_parser(
        "create-table", parents=[shared], help="create the shared table with TTL (idempotent)"
    )
    create.set_defaults(handler=cmd_create_table)
    _add_kill_switch(commands, shared)
    _add_chains(commands, shared)
    _add_migrate_check(commands)
    check = commands.add_parser(
        "doctor", parents=[shared], help="pre-flight checks of a deployed function (exit 0: all pass)"
    )
    check.add_argument("function", metavar="FN", help="function name or ARN")
    check.add_argument(
        "--principal-arn", help="simulate the IAM actions for this role (iam:SimulatePrincipalPolicy)"
    )
    check.set_defaults(handler=cmd_doctor)
    _add_local(commands)
    _verbose_anywhere(commands)
    return parser


def _add_kill_switch(commands: Any, shared: argparse.ArgumentParser) -> None:
    """``disable``, ``enable`` and ``status``."""
    for name, text in (
        ("disable", "stop all spawning of a function (kill switch; applies with force)"),
        ("enable", "allow spawning of a function again"),
        ("status", "show the kill switch and cached rule state of a function"),
    ):
        sub = commands.add_parser(name, parents=[shared], help=text)
        sub.add_argument("function", metavar="FN", help="function name or ARN")
        if name == "status":
            sub.add_argument("--json", action="store_true", help="print JSON")
        else:
            sub.add_argument("--reason", help="why (stored with the switch)")
        sub.set_defaults(handler=cmd_kill_switch)


def _add_local(commands: Any) -> None:
    """``simulate`` and ``local``: their options only, the simulator is imported when one runs."""
    simulate = commands.add_parser(
        "simulate", help="run a local fleet of self-continuing workers (no AWS account needed)"
    )
    local = commands.add_parser(
        "local", help="serve an embedded AWS (table, function, rule) in the foreground; Ctrl-C stops"
    )
    try:
        from siblings.local.options import add_arguments, add_local_arguments
    except ImportError:  # the 'local' extra is not installed
        for sub in (simulate, local):
            sub.description = f"needs the simulator: {_LOCAL_EXTRA}"
            sub.set_defaults(handler=_needs_local_extra)
    else:
        add_arguments(simulate)
        simulate.set_defaults(handler=cmd_simulate)
        add_local_arguments(local)
        local.set_defaults(handler=cmd_local)


def _verbose_anywhere(commands: Any) -> None:
    """``-v`` after the subcommand too; SUPPRESS keeps one given before it."""
    for sub in commands.choices.values():
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="log warnings and details")


def _add_estimate(commands: Any, shared: argparse.ArgumentParser) -> None:
    """``siblings estimate``'s options."""
    estimate = commands.add_parser(
        "estimate", parents=[shared], help="approximate concurrent executions of functions"
    )
    estimate.add_argument("functions", nargs="+", metavar="FN", help="function names or ARNs")
    estimate.add_argument("--minutes-back", type=int, help="window in minutes (1-1440)")
    estimate.add_argument("--json", action="store_true", help="print JSON")
    estimate.add_argument("--no-cache", action="store_true", help="ask CloudWatch, skip the caches")
    estimate.add_argument(
        "--watch", action="store_true", help="a live table refreshed every cache window (Ctrl-C stops)"
    )
    estimate.add_argument("--count", type=int, help="with --watch: stop after this many refreshes")
    estimate.add_argument("--wide", action="store_true", help="also invocations, duration, fetch time")
    estimate.set_defaults(handler=cmd_estimate)


def _add_chains(commands: Any, shared: argparse.ArgumentParser) -> None:
    """``siblings chain`` and ``siblings chains``."""
    chain = commands.add_parser("chain", parents=[shared], help="every step of one chain, in order")
    chain.add_argument("chain_id", metavar="CHAIN_ID", help="the chain id (the root's request id)")
    chain.add_argument("--limit", type=int, default=100, help="the last N generations (default 100)")
    chain.add_argument("--json", action="store_true", help="print JSON")
    chain.set_defaults(handler=cmd_chain)
    chains = commands.add_parser("chains", parents=[shared], help="recent chains of a function")
    chains.add_argument("function", metavar="FN", help="function name or ARN")
    chains.add_argument("--days", type=int, default=2, choices=range(1, 8), metavar="1-7",
                        help="UTC days to look back (default 2)")
    chains.add_argument("--limit", type=int, default=20, help="at most N chains (default 20)")
    chains.add_argument("--json", action="store_true", help="print JSON")
    chains.set_defaults(handler=cmd_chains)


def _add_migrate_check(commands: Any) -> None:
    """``siblings migrate-check``'s options."""
    check = commands.add_parser(
        "migrate-check",
        help="list the sosw usages in handler modules and what each means here",
        description="Read handler modules (never import them) and list their sosw usages. Exit "
        "status: 0 nothing needs attention, 1 something does, 2 a path could not be read or parsed.",
    )
    check.add_argument("paths", nargs="+", metavar="PATH", help="Python files or directories")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(handler=cmd_migrate_check)


_LOCAL_EXTRA = "pip install 'lambda-siblings[local]'"


def _needs_local_extra(args: argparse.Namespace) -> int:
    print(f"siblings {args.command} needs the simulator: {_LOCAL_EXTRA}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None, *, clock: Clock = SYSTEM_CLOCK) -> int:
    """Entry point of the ``siblings`` console script; ``clock`` is the time the commands read
    (tests pass a virtual one)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.clock = clock
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return cli_errors.INTERRUPTED_EXIT_CODE
    except BrokenPipeError:
        _quiet_closed_stdout()
        return cli_errors.BROKEN_PIPE_EXIT_CODE
    except Exception as exc:
        # An environment problem (no Region, no table...) first: the library reports those
        # as SiblingsError too, but they need their own hint and exit code.
        code = cli_errors.report(exc, args.command, _config_or_none(args), verbose=args.verbose)
        if code is not None:
            return code
        if not isinstance(exc, SiblingsError | ValueError | TypeError):
            raise  # a bug: keep its traceback
        print(f"siblings {args.command}: error: {exc}", file=sys.stderr)
        return cli_errors.USAGE_EXIT_CODE


def _quiet_closed_stdout() -> None:
    """The reader left (``| head``): point stdout at /dev/null so the interpreter's final flush
    does not raise a second BrokenPipeError on the way out."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _config_or_none(args: argparse.Namespace) -> SiblingsConfig | None:
    try:
        return _config(args)
    except (ValueError, TypeError):
        return None


if __name__ == "__main__":
    sys.exit(main())
