"""The library deployed to Lambda (the wheel without extras) never loads the simulator."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FORBIDDEN = ("siblings.local", "moto", "rich", "matplotlib")

# Run in a fresh interpreter: this test session has long imported the simulator itself.
PROBE = textwrap.dedent(
    """
    import importlib, pathlib, sys
    import estimator, siblings

    names = []
    for package in (estimator, siblings):
        root = pathlib.Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            if parts[:2] == ("siblings", "local"):
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    for name in names:
        importlib.import_module(name)
    print(len(names), " ".join(sorted(sys.modules)))
    """
)


def test_library_modules_do_not_import_the_simulator() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    count, _, loaded = done.stdout.strip().partition(" ")
    assert int(count) > 20  # every module of both packages was imported
    offending = [name for name in loaded.split() if _within(name, FORBIDDEN)]
    assert offending == []


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)
