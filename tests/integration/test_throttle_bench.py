"""The throttle-load benchmark completes at a tiny size and writes a coherent report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "throttle_load.py"


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_run_at_a_tiny_size_writes_report_and_plot(tmp_path: Path) -> None:
    # sosw (the seed) comes with the bench extra; without it the other three still run.
    has_seed = importlib.util.find_spec("sosw") is not None
    contenders = ["seed"] if has_seed else []
    contenders += ["naive", "ours-tier1", "ours-ddb"]
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT), "--quick", "--sizes", "3", "--duration", "2",
            "--fleet-rate", "2", "--contenders", ",".join(contenders),
            "--output-dir", str(tmp_path),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=80,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    report = (tmp_path / "throttle_load.md").read_text()
    assert report == completed.stdout
    assert report.startswith("# Throttle-load benchmark")
    assert "Command: `python benchmarks/throttle_load.py --quick --sizes 3" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "| 3 |" in line]
    labels = ["naive: 1 GetMetricData per decision", "ours: tier 1 only",
              "ours: tier 1 + DynamoDB"] + (["seed: sosw 0.7.47"] if has_seed else [])
    for label in labels:
        row = next(r for r in rows if r.startswith(f"| {label} | 3 |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[3]) >= 3  # decisions: every execution decided at least once
        assert int(cells[10]) >= 1  # Invokes reached the server
    if has_seed:
        seed = next(r for r in rows if r.startswith("| seed"))
        # The seed pays CloudWatch and EventBridge calls on every decision.
        assert float(seed.strip("|").split("|")[13]) >= 2
    assert (tmp_path / "throttle_load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "throttle_load.json").read_text())
    assert len(summary["targets"]) == 4
