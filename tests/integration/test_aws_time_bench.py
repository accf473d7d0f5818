"""The AWS-time benchmark completes at a tiny size and writes a coherent report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "aws_time.py"


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_quick_run_at_a_tiny_size_writes_report_json_and_plots(tmp_path: Path) -> None:
    # sosw comes with the bench extra; without it the other two still run.
    sosw = ["sosw", "sosw-best"] if importlib.util.find_spec("sosw") else []
    contenders = ["ours", "per-container", "naive", *sosw]
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--sizes", "5", "--duration", "120", "--no-accounts",
         "--contenders", ",".join(contenders), "--outage", "30", "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=85,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = (tmp_path / "aws_time.md").read_text()
    assert report == completed.stdout
    assert report.startswith("# AWS-time benchmark")
    summary = json.loads((tmp_path / "aws_time.json").read_text())
    fleets = {r["contender"]: r for r in summary["fleets"]}
    assert set(fleets) == set(contenders)
    for result in fleets.values():
        # 5 executions, one decision per 15 AWS seconds for 120 s: 8 each, every one answered.
        assert result["decisions"] == 40 and result["failed"] == 0
        assert result["estimates"] == [5]  # the emulated metrics say 5 run at once
    # Ours refreshes once per TTL fleet-wide, each container of the per-container cache once
    # per TTL; the naive guard asks CloudWatch on every decision, for 2 metrics each time.
    ours, outage = fleets["ours"], fleets["ours"]["outage"]
    window = (outage["start_s"], outage["start_s"] + outage["length_s"])
    outside = [n for t, n in ours["per_second"]["GetMetricData"] if not window[0] <= t < window[1]]
    assert sum(outside) <= 4
    # In the outage each of the 5 may ask itself (1/s fleet-wide allows it), never above 5/s.
    assert outage["max_getmetricdata_per_s"] <= 5
    assert fleets["per-container"]["calls"]["monitoring.GetMetricData"]["calls"] == 10
    assert fleets["naive"]["calls"]["monitoring.GetMetricData"]["calls"] == 40
    assert fleets["naive"]["metrics_requested"] == {"GetMetricData": 80}
    assert fleets["ours"]["outage"]["injected_errors"] > 0
    assert 0 < fleets["ours"]["max_item_reads_per_s"] <= 10  # metered per item per AWS second
    assert fleets["ours"]["requests_per_spawn"] == fleets["ours"]["requests_per_decision"] + 3
    if sosw:  # two GetMetricStatistics per decision; the rule listing by rule order
        assert fleets["sosw"]["calls"]["monitoring.GetMetricStatistics"]["calls"] == 80
        assert fleets["sosw"]["calls"]["events.ListTargetsByRule"]["calls"] == 40 * 5
        assert fleets["sosw-best"]["calls"]["events.ListTargetsByRule"]["calls"] == 40
    assert {r["scenario"] for r in summary["accuracy"]} == {"step", "ramp"}
    for name in ("aws_time_calls.png", "aws_time_accuracy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
