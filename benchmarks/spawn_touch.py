"""How much of the library one spawn runs through: modules and functions touched, warm and cold.

Run: ``.venv/bin/python benchmarks/spawn_touch.py`` (part of ``make bench``). Against the local
moto server on 127.0.0.1 it profiles (``sys.setprofile`` / ``threading.setprofile``, every
thread of the process, the guard pool's included) one cold spawn (a new manager: a new
container, the fleet's items already in the table) and one warm spawn (the same manager again),
and counts the distinct modules and functions of ``estimator`` and ``siblings`` that were
called (``siblings.local``, the emulator, and third-party code such as botocore are left out).
A smaller count is less for a newcomer to read along one spawn. Writes
``benchmarks/results/spawn_touch.md``; ``--label`` names the code measured (run it with
``PYTHONPATH`` on another checkout for a before/after).

Time base: none; the counts do not depend on this machine's speed, only on the code path.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

import boto3

from estimator import ensure_table
from siblings import SiblingsConfig, SiblingsManager
from siblings.local.provision import create_function, create_schedule_rule
from siblings.local.server import LOCAL_CREDENTIALS, LOCAL_REGION, LocalAwsServer

RESULTS = Path(__file__).parent / "results" / "spawn_touch.md"
_PACKAGES = ("estimator", "siblings")


class Touched:
    """The library's (module, function) pairs called while :attr:`active`, in any thread."""

    def __init__(self) -> None:
        self.active = False
        self.calls: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        """A ``sys.setprofile`` hook."""
        if not self.active or event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] in _PACKAGES and not module.startswith("siblings.local"):
            with self._lock:
                self.calls.add((module, frame.f_code.co_qualname))

    def take(self) -> dict[str, int]:
        """The counts since the last take."""
        with self._lock:
            calls, self.calls = self.calls, set()
        return {"modules": len({module for module, _ in calls}), "functions": len(calls)}


class Context:
    """A Lambda context of one execution, 5 minutes into its run."""

    def __init__(self, arn: str) -> None:
        self.invoked_function_arn = arn
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        """Ten minutes left of fifteen."""
        return 600_000


def measure() -> dict[str, dict[str, int]]:
    """Counts of one cold and one warm spawn that passes its event (the documented shape)."""
    touched = Touched()
    sys.setprofile(touched.profile)
    threading.setprofile(touched.profile)  # the guard pool's threads, made on the first spawn
    try:
        with LocalAwsServer() as server:
            session = boto3.Session(region_name=LOCAL_REGION, **LOCAL_CREDENTIALS)
            config = SiblingsConfig(endpoint_url=server.endpoint_url, region_name=LOCAL_REGION,
                                    max_concurrency=1000, function_timeout_seconds=900)
            ensure_table(config, session)
            lam = session.client("lambda", endpoint_url=server.endpoint_url)
            arn = create_function(lam, session.client("iam", endpoint_url=server.endpoint_url), "touch")
            create_schedule_rule(session.client("events", endpoint_url=server.endpoint_url), "touch", arn)
            SiblingsManager(config=config, session=session).spawn_sibling(Context(arn), {}, event={})
            manager = SiblingsManager(config=config, session=session)
            figures = {}
            for path in ("cold", "warm"):
                touched.take()
                touched.active = True
                result = manager.spawn_sibling(Context(arn), {"cursor": 1}, event={"cursor": 0})
                touched.active = False
                assert result.spawned, result
                figures[path] = touched.take()
            return figures
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", default=None, help="what code is measured (default: git HEAD)")
    args = parser.parse_args(argv)
    label = args.label or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    figures = measure()
    lines = [
        "# One spawn through the library: modules and functions touched",
        "",
        f"Command: `python benchmarks/spawn_touch.py` on {label}; "
        "`estimator` and `siblings` only (not `siblings.local`, not botocore).",
        "",
        "| spawn | modules | functions |",
        "|---|---:|---:|",
        *(f"| {path} | {f['modules']} | {f['functions']} |" for path, f in figures.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(text)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
