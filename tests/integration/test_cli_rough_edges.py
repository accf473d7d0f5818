"""The CLI's rough edges a newcomer met (issue 20): each is one line, no traceback, its own code."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import estimator
import siblings
from siblings.cli import main
from siblings.cli_errors import BROKEN_PIPE_EXIT_CODE
from siblings.local.server import LOCAL_CREDENTIALS
from tests.conftest import Aws

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv: str, env_columns: str = "80", **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIBLINGS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["COLUMNS"] = env_columns
    return subprocess.run(
        [sys.executable, "-c", "import sys; from siblings.cli import main; sys.exit(main())", *argv],
        capture_output=True, text=True, timeout=120, env=env, **kwargs,  # type: ignore[call-overload]
    )


def test_version_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert siblings.__version__ == estimator.__version__ == version("lambda-siblings")
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"siblings {siblings.__version__}"


@pytest.mark.parametrize("argv", [["migrate-check", "-v", "."], ["-v", "migrate-check", "."]])
def test_verbose_is_accepted_anywhere(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "h.py").write_text("x = 1\n")
    argv = [tmp_path.as_posix() if a == "." else a for a in argv]
    assert main(argv) == 0


def test_a_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    for index in range(1500):  # more output than a pipe buffers (64 KiB)
        (tmp_path / f"h{index}.py").write_text("from sosw.components.siblings import SiblingsManager\n")
    done = subprocess.run(
        f"{sys.executable} -c 'import sys; from siblings.cli import main; sys.exit(main())' "
        f"migrate-check {tmp_path} | head -1; echo \"status ${{PIPESTATUS[0]}}\"",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.stdout.splitlines()[-1] == f"status {BROKEN_PIPE_EXIT_CODE}"


def test_plot_into_a_missing_directory_fails_before_the_run() -> None:
    done = run_cli("simulate", "--plot", "/no/such/dir/x.png")
    assert done.returncode == 2
    assert done.stderr.strip() == "siblings simulate: --plot: directory /no/such/dir does not exist"


def test_a_missing_worker_file_is_one_line() -> None:
    done = run_cli("simulate", "--worker-file", "/no/such/worker.py")
    assert done.returncode == 2
    assert done.stderr.strip() == "siblings simulate: --worker-file: no such file: /no/such/worker.py"


def test_the_estimate_table_fits_80_columns_and_wide_shows_the_rest(
    aws: Aws, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    endpoint = ["--endpoint-url", aws.endpoint_url, "--region", "us-east-1"]
    assert main(["create-table", *endpoint]) == 0
    capsys.readouterr()
    assert main(["estimate", *endpoint, "my-function-name"]) == 0
    narrow = capsys.readouterr().out
    assert max(len(line) for line in narrow.splitlines()) <= 80
    for header in ("function", "littles_law", "observed_peak", "account", "source"):
        assert header in narrow, header  # whole, not wrapped or cut
    assert "my-function-name" in narrow and "invocations" not in narrow
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["estimate", *endpoint, "my-function-name", "--wide"]) == 0
    wide = capsys.readouterr().out
    for header in ("invocations", "avg ms", "fetched"):
        assert header in wide, header


@pytest.mark.slow
def test_a_run_cut_by_its_timeout_says_so_and_the_summary_explains_its_terms() -> None:
    done = run_cli(
        "simulate", "--chains", "2", "--records", "4000", "--timeout", "3", "--fault-rate", "0.05",
        "--template", "template.yaml", env_columns="200", cwd=ROOT,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    out = " ".join(done.stdout.split())  # the table wraps: compare words
    assert "stopped by --timeout (3 s) before every chain finished" in out
    assert "spawn decisions" in out and "a parent retried by Lambda decides again" in out
    assert "distinct siblings reported by the handlers" in out
    assert "the estimate lags" in out and "UserWarning" not in done.stderr


class NoAccountSettings:
    """A server that lacks GetAccountSettings, as plain moto does: a werkzeug HTML 404 page."""

    def wrap(self, app: Any) -> Any:
        def without(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO", "").endswith("/account-settings"):
                body = (
                    b'<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n'
                    b"<p>The requested URL was not found on the server. If you entered the URL manually "
                    b"please check your spelling and try again.</p>\n"
                )
                start_response("404 NOT FOUND", [("Content-Type", "text/html; charset=utf-8")])
                return [body]
            return app(environ, start_response)

        return without


def test_estimate_against_a_server_without_account_settings_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import serve_behind

    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name.upper(), value)
    with contextmanager(serve_behind)(NoAccountSettings()) as (server, _):
        endpoint = ["--endpoint-url", server.endpoint_url, "--region", "us-east-1"]
        assert main(["create-table", *endpoint]) == 0
        capsys.readouterr()
        assert main(["estimate", *endpoint, "fn"]) == 0
    out, err = capsys.readouterr()
    assert "<" not in err and err.count("\n") == 1, err
    assert err.startswith("siblings estimate: account limit unavailable: lambda:GetAccountSettings")
    assert "HTTP 404" in err and "fn" in out


def test_watch_without_rich_names_the_small_extra() -> None:
    probe = (
        "import sys; sys.modules['rich'] = None; sys.modules['rich.console'] = None\n"
        "from siblings.cli import main\n"
        "sys.exit(main(['estimate', 'fn', '--watch', '--region', 'us-east-1', '--endpoint-url', "
        "'http://127.0.0.1:9']))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    expected = "siblings estimate: error: --watch needs rich: pip install 'lambda-siblings[watch]'"
    assert done.stderr.strip() == expected


@pytest.mark.slow
def test_the_dist_check_run_spawns_siblings(capsys: pytest.CaptureFixture[str]) -> None:
    """``make dist-check``'s small run, as the Makefile gives it, hands work to siblings."""
    import json
    import re
    import shlex

    recipe = (ROOT / "Makefile").read_text()
    (line,) = re.findall(r'siblings" simulate (.*?) --json', recipe)
    assert main(["simulate", *shlex.split(line), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["spawns"]["spawned"] >= 2 and summary["verification"]["ok"]
    assert 'n >= 2' in recipe and "siblings spawned" in recipe  # and the Makefile asserts it
