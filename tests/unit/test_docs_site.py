"""The docs site: its pages in the order a user needs them, every non-Python block checked.

The Python blocks are executed by ``tests/integration/test_docs.py``; here the shell lines are
parsed by the tool they name (the ``siblings`` parser, the Makefile, the package's extras), the
IAM block is held to ``siblings.iam.RUNTIME_ACTIONS`` and the API reference to ``__all__``.
"""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest
import yaml

import estimator
import siblings
from siblings.cli import build_parser
from siblings.iam import RUNTIME_ACTIONS, TRIGGER_SCHEDULE_ACTIONS
from tests.docs import DOCS, README, ROOT, blocks, page, pages, section

# The order: one page per task.
NAV = [
    "index.md", "getting-started.md", "spawn-siblings.md", "guards.md", "estimate-concurrency.md",
    "testing-your-handler.md", "deploy.md", "migrate-from-sosw.md", "operate.md", "benchmarks.md",
    "guarantees.md", "reference.md",
]
SHELL = ("bash", "console")


def nav() -> list[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    return [next(iter(entry.values())) for entry in config["nav"]]


def test_one_page_per_task_in_order() -> None:
    assert nav() == NAV
    assert sorted(path.name for path in DOCS.glob("*.md")) == sorted(NAV)


def test_the_readme_is_a_landing_page_linking_every_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    for name in NAV[1:]:
        assert f"(docs/{name})" in text, name
    assert (ROOT / "CHANGELOG.md").is_file() and "(CHANGELOG.md)" in text


def shell_lines() -> list[tuple[str, str]]:
    """(page, command) of every shell line of the docs: continuations joined, comments and
    prompts dropped."""
    found = []
    for name in pages():
        for language in SHELL:
            for body in blocks(name, language):
                for line in body.replace("\\\n", " ").splitlines():
                    command = line.removeprefix("$ ").split(" #")[0].split(" | ")[0].strip()
                    if command and not command.startswith("#"):
                        found.append((name, command))
    return found


def siblings_argv(command: str) -> list[str] | None:
    words = shlex.split(command)
    if not words or words[0].rsplit("/", 1)[-1] != "siblings":
        return None
    # A synopsis marks options [--like this] and placeholders N / FN.
    argv = [word.strip("[]") for word in words[1:]]
    return ["5" if word == "N" else word for word in argv if word]


@pytest.mark.parametrize(
    "command", sorted({c for _, c in shell_lines() if siblings_argv(c) is not None})
)
def test_every_siblings_command_of_the_docs_parses(command: str) -> None:
    argv = siblings_argv(command)
    assert argv is not None
    if argv in (["simulate", "--help"], ["--version"]):
        with pytest.raises(SystemExit) as exit_:  # they print and exit, successfully
            build_parser().parse_args(argv)
        assert exit_.value.code == 0
        return
    build_parser().parse_args(argv)


def test_every_make_target_and_extra_of_the_docs_exists() -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    checked = 0
    for _, command in shell_lines():
        words = shlex.split(command)
        if words[0] == "make":
            assert words[1] in targets, command
            checked += 1
        for extra in re.findall(r"lambda-siblings\[(\w+)\]", command):
            assert extra in extras, command
            checked += 1
    assert checked >= 6


def test_every_python_one_liner_of_the_docs_compiles() -> None:
    one_liners = [c for _, c in shell_lines() if c.startswith("python -c ")]
    assert one_liners
    for command in one_liners:
        compile(shlex.split(command)[2], "docs", "exec")


def test_the_documented_policy_has_exactly_the_runtime_actions() -> None:
    policy, schedules = blocks("deploy", "yaml")
    pattern = r"\b((?:cloudwatch|lambda|events|dynamodb|s3|scheduler|iam):(?!PassedToService)\w+)"
    assert set(re.findall(pattern, policy)) == set(RUNTIME_ACTIONS)
    # The statement added with trigger_schedules.
    assert set(re.findall(pattern, schedules)) == set(TRIGGER_SCHEDULE_ACTIONS)


def test_the_migration_diff_is_the_import_that_works() -> None:
    (diff,) = blocks("migrate-from-sosw", "diff")
    (added,) = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    namespace: dict[str, object] = {}
    exec(added, namespace)
    assert namespace["SiblingsManager"] is siblings.SiblingsManager


@pytest.mark.parametrize("package", [siblings, estimator])
def test_the_api_reference_names_every_public_name(package: object) -> None:
    api = section("reference", "API")
    named = set(re.findall(r"`(\w+)`", api))
    assert set(package.__all__) <= named  # type: ignore[attr-defined]


def test_no_stale_module_is_documented() -> None:
    for name in pages():
        text = page(name)
        for stale in ("examples/", "quota.py", "runtime.py", "needs only CloudWatch"):
            assert stale not in text, (name, stale)
