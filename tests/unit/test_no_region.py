"""Nothing fails at import or in a constructor without AWS settings (issue 20.2): clients are
made on first use, and a missing Region is one clear error raised by the call that needs it.
The handler examples of the README and the docs are imported as a Lambda runtime would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
from tests.docs import blocks
# The handler examples (README and docs): modules a Lambda runtime imports.
for name, index in (("README", 0), ("index", 0), ("spawn-siblings", 0), ("spawn-siblings", 1),
                    ("operate", 0), ("testing-your-handler", 0)):
    exec(compile(blocks(name, "python")[index], f"{name}.md", "exec"), {})
from siblings import SiblingsManager
SiblingsManager()
SiblingsManager(custom_config={"use_dynamodb": False})
from estimator import ConcurrencyEstimator
ConcurrencyEstimator()
print("imported")
"""

FIRST_CALL = r"""
from siblings import SiblingsManager, NoRegion
from siblings import spawning_status
try:
    spawning_status("worker")
except NoRegion as exc:
    print("NoRegion:", exc)
"""


def empty_aws_env(home: Path) -> dict[str, str]:
    """The environment of a machine with no AWS settings at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIBLINGS_", "BOTO"))}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(home / "none"), AWS_SHARED_CREDENTIALS_FILE=str(home / "none"))
    return env


def run(code: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=empty_aws_env(home), capture_output=True,
        text=True, timeout=120, check=False,
    )


def test_readme_handlers_import_and_managers_construct_without_a_region(tmp_path: Path) -> None:
    done = run(SCRIPT, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("imported")


def test_the_first_call_that_needs_a_region_raises_no_region(tmp_path: Path) -> None:
    done = run(FIRST_CALL, home=tmp_path)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("NoRegion:") and "SIBLINGS_REGION_NAME" in line
    assert re.search(r"AWS_REGION", line)


@pytest.mark.parametrize("name", ["NoRegion"])
def test_no_region_is_a_library_error(name: str) -> None:
    import siblings
    from estimator.exceptions import LambdaSiblingsError

    assert issubclass(getattr(siblings, name), LambdaSiblingsError)
