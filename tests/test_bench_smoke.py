"""The benchmark suite runs: ``python -m benchmarks --smoke`` (about a second per row).

Not a performance test: this machine is shared and noisy, so no figure is compared with
anything. What is checked is that every row of the README's table is produced, with a number,
and that each row with a baseline got it measured in the same run. Needs dpdk-testpmd like the
interop tests (the suite fails, never skips, when it is missing).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import testpmd

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.interop


def test_smoke_run_produces_every_row_against_a_baseline_of_the_same_run(tmp_path: Path) -> None:
    testpmd.require_testpmd()
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out), "--prefix", f"bench-smoke-{os.getpid()}"]
    # The README's command, from the repository root: conftest's PYTHONSAFEPATH would hide the
    # package there (benchmarks/__init__.py itself keeps memif_ct the installed one).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.rows import BASELINES, ROWS
    finally:
        if str(ROOT) in sys.path:  # benchmarks/__init__.py may have taken it off already
            sys.path.remove(str(ROOT))
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["repeat"] == 1
    assert report["command"].startswith("python -m benchmarks --smoke")
    assert {"cpu", "cores", "kernel", "python", "dpdk"} <= set(report["machine"])
    got = {row["key"]: row for row in report["rows"]}
    assert list(got) == [row.key for row in ROWS], "a row of the table is missing"
    baselines = {b.key for b in BASELINES}
    for row in ROWS:
        figures = got[row.key]
        assert len(figures["values"]) == 1 and math.isfinite(figures["value"]) and figures["value"] > 0, row.key
        if row.baseline is not None:
            assert row.baseline in baselines
            # one baseline per run: measured in this run, right before the figure it divides
            assert len(figures["baselines"]) == 1 and figures["baselines"][0] > 0, row.key
            assert figures["ratio"] == pytest.approx(figures["value"] / figures["baseline"]), row.key
        assert row.key in r.stdout, f"{row.key} is not in the printed table"
    # Each measured row's baseline is measured anew right before it, not once per run.
    progress = [line for line in r.stderr.splitlines() if line.startswith("[run 1/1] ")]
    for row in ROWS:
        if row.baseline is not None and row.derived_from is None:
            i = progress.index(f"[run 1/1] baseline {row.baseline} for {row.key}")
            assert progress[i + 1] == f"[run 1/1] {row.key}", progress[i:i + 2]
    assert "SMOKE RUN" in r.stdout


def test_budget_bench_prints_the_c_floor_and_both_python_paths() -> None:
    """``python -m benchmarks.bench_budget``: every path measured (the bare C calls of the
    buffer path and the two floors too), each with a rate, the time of a full burst and a ratio to the baseline
    of the same run."""
    testpmd.require_testpmd()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSAFEPATH"}
    cmd = [sys.executable, "-m", "benchmarks.bench_budget", "--seconds", "0.3", "--repeat", "1"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    rows = {}
    for line in r.stdout.splitlines()[2:]:
        *name, mpps, ratio, us = line.split()
        rows[" ".join(name)] = (float(mpps), float(ratio.rstrip("x")), float(us))
    assert list(rows) == ["C + 0 us", "C + 2 us", "C + 4 us", "C + 8 us", "buffer C", "buffer floor", "list floor",
                          "packed", "buffer", "list"], r.stdout
    for name, (mpps, ratio, us) in rows.items():
        assert mpps > 0 and ratio > 0 and us > 0, (name, r.stdout)
    assert "baseline testpmd txonly -> rxonly" in r.stdout
