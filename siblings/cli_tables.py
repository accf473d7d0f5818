"""How the ``siblings`` command prints: times, and tables (rich when installed, else plain)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from estimator import AccountLimit, Estimate


def when(epoch: float | None) -> str:
    """``epoch`` as a UTC date and time, ``-`` for ``None``."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def rich_table(title: str, columns: list[str], rows: list[list[str]]) -> Any:
    """The rows as a ``rich`` table (rich must be installed)."""
    from rich.table import Table

    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if index else "left")
    for row in rows:
        table.add_row(*row)
    return table


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A rich table when rich is installed, aligned plain text otherwise."""
    try:
        from rich.console import Console
    except ImportError:
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
                  for i, c in enumerate(columns)]
        print(title)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
        return
    Console().print(rich_table(title, columns, rows))


_ESTIMATE_COLUMNS = [
    "function", "littles_law", "observed_peak", "account", "source", "invocations", "avg ms", "fetched",
]
# The first five fit 80 columns with a function name of ~20 characters; --wide shows them all.
_NARROW = 5


def estimate_layout(wide: bool, rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """The estimate table's columns and rows, narrow unless ``wide`` (``--wide``)."""
    width = len(_ESTIMATE_COLUMNS) if wide else _NARROW
    return _ESTIMATE_COLUMNS[:width], [row[:width] for row in rows]


def estimate_rows(estimates: dict[str, Estimate], limit: AccountLimit | None) -> list[list[str]]:
    """One row per estimate: its signals, the account's concurrency against its limit."""

    def maybe(value: int | None) -> str:
        return "-" if value is None else str(value)

    ceiling = "-" if limit is None else str(limit.concurrent_executions)
    return [
        [
            name,
            str(e.value),
            maybe(e.observed_peak),
            f"{maybe(e.account_concurrency)} / {ceiling}",
            e.source + (" (stale)" if e.stale else ""),
            f"{e.invocations:g}",
            "-" if e.avg_duration_ms is None else f"{e.avg_duration_ms:.1f}",
            when(e.fetched_at),
        ]
        for name, e in estimates.items()
    ]
