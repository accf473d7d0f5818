"""``siblings migrate-check``: what in a sosw handler needs a look before or after the switch.

The module is read with :mod:`ast`, never imported or run. Each usage found is a
:class:`Usage` of one :class:`Finding`, which says what it means once the handler runs on
lambda-siblings. Findings of severity ``attention`` make the command exit 1; ``info`` ones
only describe what the handler does.

Calls are recognised by the method name (``spawn_sibling``, ``load_payload``), whatever the
object: the check cannot know types, so a method of the same name on another class counts too.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import IO, Any, get_type_hints

from estimator.settings import parse
from siblings import manager as _manager
from siblings.config import SiblingsConfig

SOSW_MODULE = "sosw.components.siblings"
OURS_MODULE = "siblings"

EXIT_CLEAN = 0
"""Nothing needs attention."""
EXIT_ATTENTION = 1
"""At least one finding needs attention."""
EXIT_UNREADABLE = 2
"""A path could not be read or parsed (wins over the other two)."""


class Severity(StrEnum):
    """How much a finding matters for the switch."""

    ATTENTION = "attention"
    """Change the handler (or decide knowingly not to)."""
    INFO = "info"
    """Works as it is; says what it does now."""


class Finding(Enum):
    """A kind of sosw usage, with what it means on lambda-siblings."""

    SOSW_IMPORT = (
        Severity.ATTENTION,
        "imports sosw's SiblingsManager",
        "change the import to `from siblings import SiblingsManager`; names and arguments stay",
    )
    SOSW_INIT_CLIENTS = (
        Severity.ATTENTION,
        "asks sosw's Processor to build `siblings_client` ('Siblings' in init_clients)",
        "sosw builds that client from its own module, so changing imports does not reach it: "
        "drop 'Siblings' from init_clients and set `self.siblings_client = SiblingsManager(...)`",
    )
    FORCE = (
        Severity.ATTENTION,
        "spawn_sibling(..., force=...) switches the guards off",
        "the guards are cached now, so force is not needed to avoid throttling: without it the "
        "EventBridge rule and max_concurrency are checked; with it only the kill switch, "
        "max_generations and min_account_headroom (when set) are",
    )
    NONE_CHECK = (
        Severity.ATTENTION,
        "compares the result of spawn_sibling with None",
        "spawn_sibling returns a SpawnResult, never None: test `if result:` (spawned) or "
        "`result.reason`",
    )
    UNKNOWN_KWARGS = (
        Severity.ATTENTION,
        "passes SiblingsManager keyword arguments it does not take",
        "sosw ignored unknown keyword arguments; lambda-siblings raises TypeError",
    )
    NO_LOAD_PAYLOAD = (
        Severity.ATTENTION,
        "spawns siblings but never calls load_payload",
        "every sibling's event carries the reserved key `__siblings__`, and an offloaded payload "
        "arrives as an S3 pointer only: read the event with `payload = siblings.load_payload(event, "
        "context)` (guards and the generation limit work either way)",
    )
    CHANGED_VALUE = (
        Severity.ATTENTION,
        "a setting whose value means something else here",
        "sosw used the value as given (any non-empty string is true); lambda-siblings parses it "
        "(true/yes/on/1, false/no/off/0) and rejects anything else: write a real boolean",
    )
    STAGE_DRY_RUN = (
        Severity.ATTENTION,
        "sets STAGE=test, which made sosw invoke with InvocationType='DryRun'",
        "STAGE is not read: set `dry_run` (SIBLINGS_DRY_RUN=true or custom_config) instead",
    )
    OURS_IMPORT = (
        Severity.INFO,
        "imports lambda-siblings",
        "switched",
    )
    SPAWN = (
        Severity.INFO,
        "spawn_sibling call",
        "guarded (kill switch, max_generations, EventBridge rule, max_concurrency), one sibling "
        "per execution; returns a SpawnResult and raises SpawnFailed when the Invoke fails",
    )

    def __init__(self, severity: Severity, message: str, after: str) -> None:
        self.severity = severity
        self.message = message
        self.after = after

    @property
    def code(self) -> str:
        """The finding's name as printed: ``force``, ``no-load-payload``..."""
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class Usage:
    """One place where a :class:`Finding` was seen."""

    finding: Finding
    path: str
    line: int
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy."""
        return {
            "finding": self.finding.code,
            "severity": str(self.finding.severity),
            "path": self.path,
            "line": self.line,
            "message": self.finding.message,
            "after": self.finding.after,
            "detail": self.detail,
        }


class Unreadable(Exception):
    """A path that could not be read or parsed as Python."""


# The keyword arguments the manager takes, from its own lists so that the two cannot drift.
_MANAGER_KWARGS = frozenset({"custom_config", *_manager._CLIENT_KWARGS, *_manager._OTHER_KWARGS})


class _Visitor(ast.NodeVisitor):
    """Collects the usages of one module."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.usages: list[Usage] = []
        self.loads_payload = False
        # Names assigned the result of a spawn_sibling call, in any scope: a static guess.
        self.results: set[str] = set()

    def add(self, finding: Finding, node: ast.AST, detail: str = "") -> None:
        self.usages.append(Usage(finding, self.path, getattr(node, "lineno", 0), detail))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        names = {alias.name for alias in node.names}
        if module == SOSW_MODULE or (module == "sosw.components" and "siblings" in names):
            self.add(Finding.SOSW_IMPORT, node, f"from {module} import {', '.join(sorted(names))}")
        elif module == OURS_MODULE or module.startswith(OURS_MODULE + "."):
            self.add(Finding.OURS_IMPORT, node, f"from {module} import {', '.join(sorted(names))}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == SOSW_MODULE:
                self.add(Finding.SOSW_IMPORT, node, f"import {alias.name}")

    def visit_Call(self, node: ast.Call) -> None:
        name = _called_name(node)
        if name == "spawn_sibling":
            self.add(Finding.SPAWN, node)
            force = _force_argument(node)
            if force is not None and not _is_false(force):
                self.add(Finding.FORCE, node, f"force={ast.unparse(force)}")
        elif name in ("load_payload", "Invocation"):
            self.loads_payload = True  # Invocation reads the payload itself
        elif len(node.args) >= 2:
            self._stage(node, node.args[0], node.args[1])  # setenv / setdefault / putenv
        if name == "SiblingsManager":
            unknown = sorted(k.arg for k in node.keywords if k.arg and k.arg not in _MANAGER_KWARGS)
            if unknown:
                self.add(Finding.UNKNOWN_KWARGS, node, ", ".join(unknown))
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if _is_spawn(node.value):
            self.results.update(t.id for t in node.targets if isinstance(t, ast.Name))
        for target in node.targets:
            if isinstance(target, ast.Subscript):
                self._stage(node, target.slice, node.value)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        spawns = any(_is_spawn(o) or (isinstance(o, ast.Name) and o.id in self.results) for o in operands)
        nones = any(isinstance(o, ast.Constant) and o.value is None for o in operands)
        if spawns and nones:
            self.add(Finding.NONE_CHECK, node, ast.unparse(node))
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "init_clients" and _lists_siblings(value):
                self.add(Finding.SOSW_INIT_CLIENTS, node)
            changed = _changed_meaning(key, value)
            if changed:
                self.add(Finding.CHANGED_VALUE, value, changed)
        self.generic_visit(node)

    def _stage(self, node: ast.AST, key: ast.expr, value: ast.expr) -> None:
        """``environ['STAGE'] = 'test'``, ``setenv('STAGE', 'test')``...: sosw's dry run switch."""
        if _is_constant(key, "STAGE") and _is_constant(value, "test"):
            self.add(Finding.STAGE_DRY_RUN, node)


def _is_constant(node: ast.expr, value: str) -> bool:
    return isinstance(node, ast.Constant) and node.value == value


# The boolean settings of SiblingsConfig: sosw used custom_config values as given.
_BOOL_FIELDS = frozenset(
    name for name, hint in get_type_hints(SiblingsConfig).items() if hint is bool
)


def _changed_meaning(key: ast.expr | None, value: ast.expr) -> str:
    """Why ``{key: value}`` means something else here than in sosw, or ``""``."""
    if not (isinstance(key, ast.Constant) and key.value in _BOOL_FIELDS):
        return ""
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return ""
    in_sosw = "true" if value.value else "false"
    try:
        here = "true" if parse(key.value, value.value, bool) else "false"
    except (TypeError, ValueError):
        here = "rejected"
    if here == in_sosw:
        return ""
    return f"{key.value!r}: {value.value!r} is {in_sosw} in sosw, {here} here"


def _called_name(node: ast.Call) -> str | None:
    """``f`` for ``f(...)`` and ``x.f(...)``."""
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _is_spawn(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _called_name(node) == "spawn_sibling"


def _force_argument(node: ast.Call) -> ast.expr | None:
    """The ``force`` of a ``spawn_sibling(context, payload, force)`` call, by keyword or third
    position (the manager's signature; ``Invocation.spawn_sibling`` takes it by keyword)."""
    for keyword in node.keywords:
        if keyword.arg == "force":
            return keyword.value
    return node.args[2] if len(node.args) >= 3 else None


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and not node.value


def _lists_siblings(node: ast.expr) -> bool:
    if not isinstance(node, ast.List | ast.Tuple | ast.Set):
        return False
    return any(isinstance(e, ast.Constant) and e.value == "Siblings" for e in node.elts)


def check_source(source: str, path: str = "<string>") -> list[Usage]:
    """The usages in Python ``source``, in line order. Raises ``SyntaxError``."""
    visitor = _Visitor(path)
    visitor.visit(ast.parse(source, filename=path))
    usages = visitor.usages
    spawns = [u for u in usages if u.finding is Finding.SPAWN]
    if spawns and not visitor.loads_payload:
        usages.append(Usage(Finding.NO_LOAD_PAYLOAD, path, spawns[0].line))
    return sorted(usages, key=lambda u: (u.line, u.finding.message))


def check_file(path: Path) -> list[Usage]:
    """The usages in the Python file at ``path``; raises :class:`Unreadable`."""
    try:
        source = path.read_text(encoding="utf-8")
        return check_source(source, str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(f"{path}: cannot read: {exc}") from exc
    except SyntaxError as exc:
        raise Unreadable(f"{path}:{exc.lineno}: not valid Python: {exc.msg}") from exc


def python_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Each path, and the ``*.py`` files under each directory (hidden ones skipped)."""
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield path
            continue
        for found in sorted(path.rglob("*.py")):
            if not any(part.startswith(".") for part in found.relative_to(path).parts):
                yield found


def run(paths: Sequence[str | Path], out: IO[str], err: IO[str], *, as_json: bool = False) -> int:
    """Check ``paths``, print the usages to ``out`` and unreadable paths to ``err``.

    Returns :data:`EXIT_UNREADABLE` if a path could not be checked, else
    :data:`EXIT_ATTENTION` if a finding needs attention, else :data:`EXIT_CLEAN`.
    """
    usages: list[Usage] = []
    unreadable = False
    for path in python_files(paths):
        try:
            usages.extend(check_file(path))
        except Unreadable as exc:
            unreadable = True
            print(f"siblings migrate-check: {exc}", file=err)
    attention = [u for u in usages if u.finding.severity is Severity.ATTENTION]
    if as_json:
        print(json.dumps([u.to_dict() for u in usages], indent=2), file=out)
    else:
        for usage in usages:
            detail = f" ({usage.detail})" if usage.detail else ""
            print(f"{usage.path}:{usage.line}: {usage.finding.severity}: "
                  f"{usage.finding.message}{detail}", file=out)
            print(f"    after the switch: {usage.finding.after}", file=out)
        print(f"{len(attention)} to look at, {len(usages) - len(attention)} for information", file=out)
    if unreadable:
        return EXIT_UNREADABLE
    return EXIT_ATTENTION if attention else EXIT_CLEAN
