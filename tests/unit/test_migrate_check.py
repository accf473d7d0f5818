"""``siblings migrate-check``: the sosw usages found in handler sources, and the exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from siblings.cli import main
from siblings.migrate_check import Finding, Severity, check_source

SOSW_HANDLER = textwrap.dedent(
    """
    from sosw import Processor as SoswProcessor
    from sosw.components.siblings import SiblingsManager

    class Processor(SoswProcessor):
        DEFAULT_CONFIG = {"init_clients": ["Siblings"], "shutdown_period": 10}
        siblings_client: SiblingsManager = None

        def __call__(self, event):
            cursor = event.get("cursor", 0)
            self.siblings_client.spawn_sibling(context, payload={"cursor": cursor}, force=True)
    """
)

MIGRATED_HANDLER = textwrap.dedent(
    """
    from siblings import SiblingsManager

    siblings = SiblingsManager(custom_config={"max_concurrency": 50})

    def lambda_handler(event, context):
        payload = siblings.load_payload(event, context)
        result = siblings.spawn_sibling(context, payload={"cursor": payload.get("cursor", 0) + 1})
        return result.to_dict()
    """
)


def found(source: str) -> list[tuple[Finding, int]]:
    return [(usage.finding, usage.line) for usage in check_source(textwrap.dedent(source))]


def write(tmp_path: Path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def test_the_sosw_handler_of_sosw_docs() -> None:
    assert found(SOSW_HANDLER) == [
        (Finding.SOSW_IMPORT, 3),
        (Finding.SOSW_INIT_CLIENTS, 6),
        (Finding.SPAWN, 11),
        (Finding.FORCE, 11),
        (Finding.NO_LOAD_PAYLOAD, 11),
    ]


def test_a_migrated_handler_needs_nothing() -> None:
    findings = found(MIGRATED_HANDLER)
    assert [f for f, _ in findings] == [Finding.OURS_IMPORT, Finding.SPAWN]
    assert all(f.severity is Severity.INFO for f, _ in findings)


@pytest.mark.parametrize(
    "source",
    [
        "import sosw.components.siblings\n",
        "import sosw.components.siblings as s\n",
        "from sosw.components import siblings\n",
        "from sosw.components.siblings import *\n",
    ],
)
def test_every_form_of_the_sosw_import(source: str) -> None:
    assert found(source) == [(Finding.SOSW_IMPORT, 1)]


@pytest.mark.parametrize(
    ("call", "forced"),
    [
        ("m.spawn_sibling(ctx, force=True)", True),
        ("m.spawn_sibling(ctx, {}, True)", True),
        ("m.spawn_sibling(ctx, force=urgent)", True),
        ("m.spawn_sibling(ctx, force=False)", False),
        ("m.spawn_sibling(ctx, {}, False)", False),
        ("m.spawn_sibling(ctx, {'force': True})", False),
        ("run.spawn_sibling({'cursor': 1})", False),
    ],
)
def test_force(call: str, forced: bool) -> None:
    kinds = [f for f, _ in found(f"m.load_payload(e)\n{call}\n")]
    assert (Finding.FORCE in kinds) is forced


@pytest.mark.parametrize(
    "condition",
    ["m.spawn_sibling(ctx) is None", "m.spawn_sibling(ctx) is not None", "None == m.spawn_sibling(ctx)"],
)
def test_comparisons_with_none(condition: str) -> None:
    kinds = [f for f, _ in found(f"load_payload(e)\nif {condition}:\n    pass\n")]
    assert Finding.NONE_CHECK in kinds


def test_a_result_kept_in_a_name_and_compared_with_none() -> None:
    source = """
        payload = load_payload(event)
        result = manager.spawn_sibling(context, payload)
        if result is None:
            log("not spawned")
        other = compute()
        if other is None:
            pass
    """
    assert [(f, line) for f, line in found(source) if f is Finding.NONE_CHECK] == [(Finding.NONE_CHECK, 4)]


def test_invocation_reads_the_payload_itself() -> None:
    source = """
        from siblings import Invocation
        def handler(event, context):
            run = Invocation(event, context)
            run.spawn_sibling({"cursor": 1})
    """
    assert Finding.NO_LOAD_PAYLOAD not in [f for f, _ in found(source)]


def test_keyword_arguments_the_manager_does_not_take() -> None:
    usages = check_source("SiblingsManager(custom_config={}, test=True, session=s)\n")
    assert [(u.finding, u.detail) for u in usages] == [(Finding.UNKNOWN_KWARGS, "test")]
    assert check_source("SiblingsManager(custom_config={}, lambda_client=c, config=k)\n") == []


def test_the_handler_is_never_imported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').close()\nraise SystemExit(9)\n" + SOSW_HANDLER
    assert main(["migrate-check", write(tmp_path, "handler.py", source)]) == 1
    assert not marker.exists()


def test_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sosw = write(tmp_path, "sosw_handler.py", SOSW_HANDLER)
    migrated = write(tmp_path, "migrated.py", MIGRATED_HANDLER)
    assert main(["migrate-check", migrated]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "0 to look at, 2 for information"
    assert main(["migrate-check", sosw, migrated]) == 1
    out = capsys.readouterr().out
    assert f"{sosw}:11: attention: spawn_sibling(..., force=...)" in out
    assert "after the switch: change the import to `from siblings import SiblingsManager`" in out


def test_unreadable_and_unparsable_paths_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = write(tmp_path, "broken.py", "def handler(:\n")
    migrated = write(tmp_path, "migrated.py", MIGRATED_HANDLER)
    assert main(["migrate-check", broken, migrated]) == 2
    assert f"{broken}:1: not valid Python" in capsys.readouterr().err
    assert main(["migrate-check", str(tmp_path / "missing.py")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "latin1.py").write_bytes(b"x = '\xe9'\n")
    assert main(["migrate-check", str(tmp_path / "latin1.py")]) == 2


def test_directories_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "a.py", SOSW_HANDLER)
    (tmp_path / "pkg").mkdir()
    write(tmp_path / "pkg", "b.py", MIGRATED_HANDLER)
    (tmp_path / ".venv").mkdir()
    write(tmp_path / ".venv", "c.py", SOSW_HANDLER)
    assert main(["migrate-check", str(tmp_path), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert {Path(item["path"]).name for item in data} == {"a.py", "b.py"}
    force = next(item for item in data if item["finding"] == "force")
    assert force["severity"] == "attention" and force["line"] == 11 and force["detail"] == "force=True"


@pytest.mark.parametrize(
    ("entry", "flagged", "words"),
    [
        ("'auto_spawning': 'false'", True, "true in sosw, false here"),
        ("'auto_spawning': 'no'", True, "true in sosw, false here"),
        ("'auto_spawning': '0'", True, "true in sosw, false here"),
        ("'dry_run': 'off'", True, "true in sosw, false here"),
        ("'auto_spawning': 'maybe'", True, "rejected here"),
        ("'auto_spawning': ''", True, "false in sosw, rejected here"),
        ("'auto_spawning': 'true'", False, ""),  # true in both
        ("'auto_spawning': False", False, ""),
        ("'shutdown_period': 'false'", False, ""),  # not a setting of ours
    ],
)
def test_values_whose_meaning_changes(entry: str, flagged: bool, words: str) -> None:
    source = f"from siblings import SiblingsManager\nm = SiblingsManager(custom_config={{{entry}}})\n"
    found = [u for u in check_source(source) if u.finding is Finding.CHANGED_VALUE]
    assert bool(found) is flagged
    if flagged:
        assert found[0].finding.severity is Severity.ATTENTION and found[0].line == 2
        assert words in found[0].detail


def test_stage_test_no_longer_means_dry_run() -> None:
    source = "import os\nos.environ['STAGE'] = 'test'\n"
    (found,) = [u for u in check_source(source) if u.finding is Finding.STAGE_DRY_RUN]
    assert found.line == 2
