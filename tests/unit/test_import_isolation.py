"""The library deployed to Lambda (the wheel without extras) never loads the simulator."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FORBIDDEN = ("siblings.local", "moto", "rich", "matplotlib")

# Each probe runs in a fresh interpreter (this session has long imported the simulator) and
# prints how many modules it imported, then every module loaded.
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
# As Lambda imports the deployed handler: a top-level module beside the installed library.
WORKER_PROBE = textwrap.dedent(
    """
    import importlib.util, pathlib, sys
    import siblings

    path = pathlib.Path(siblings.__file__).parent / "local" / "workers" / "cursor_worker.py"
    spec = importlib.util.spec_from_file_location("cursor_worker", path)
    module = sys.modules["cursor_worker"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.lambda_handler)
    print(1, " ".join(sorted(sys.modules)))
    """
)

# The CLI's parser: the simulate options, nothing else of the simulator.
PARSER_PROBE = textwrap.dedent(
    """
    import sys
    import siblings.cli

    args = siblings.cli.build_parser().parse_args(["simulate", "--chains", "2"])
    assert args.chains == 2
    print(1, " ".join(sorted(sys.modules)))
    """
)
# Without the local extra (moto missing): help still works, simulate says what to install.
NO_EXTRA_PROBE = textwrap.dedent(
    """
    import contextlib, io, sys
    sys.modules["moto"] = None  # find_spec("moto") is None, as when it is not installed
    import siblings.cli

    assert "simulate" in siblings.cli.build_parser().format_help()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = siblings.cli.main(["simulate"])
    assert code == 2 and "lambda-siblings[local]" in err.getvalue(), err.getvalue()
    for command in ("simulate", "local"):
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
            siblings.cli.main([command, "--help"])
        assert "pip install 'lambda-siblings[local]'" in out.getvalue(), out.getvalue()
    print(1, " ".join(sorted(name for name, module in sys.modules.items() if module)))
    """
)


def test_library_modules_do_not_import_the_simulator() -> None:
    count, loaded = _probe(PROBE)
    assert count > 20  # every module of both packages was imported
    assert [name for name in loaded if _within(name, FORBIDDEN)] == []


def test_the_deployed_worker_does_not_import_the_simulator() -> None:
    _, loaded = _probe(WORKER_PROBE)
    assert [name for name in loaded if _within(name, FORBIDDEN)] == []


def test_the_cli_parser_imports_only_the_simulate_options() -> None:
    _, loaded = _probe(PARSER_PROBE)
    simulator = [name for name in loaded if _within(name, FORBIDDEN)]
    assert set(simulator) <= {"siblings.local", "siblings.local.options", "siblings.local.settings"}


def test_the_cli_works_without_the_local_extra() -> None:
    _, loaded = _probe(NO_EXTRA_PROBE)
    assert [name for name in loaded if _within(name, ("moto", "rich", "matplotlib"))] == []


def _probe(code: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    count, _, loaded = done.stdout.strip().partition(" ")
    return int(count), loaded.split()


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)
