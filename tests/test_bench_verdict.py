"""The benchmark table's verdict: the median's, with how many runs met the target.

No testpmd needed: the figures are made up, the judging is the suite's own."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _suite():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import rows, suite
    finally:
        if str(ROOT) in sys.path:
            sys.path.remove(str(ROOT))
    return rows, suite


def test_a_median_that_meets_the_target_says_how_many_runs_did() -> None:
    rows, suite = _suite()
    row = next(r for r in rows.ROWS if r.key == "buffer-tx")  # target >= 1.0x
    # Ratios 1.88, 0.88, 1.34, 1.29, 0.75: the median meets the target, two runs miss it.
    res = suite.Result(values=[33.4, 22.6, 24.7, 24.7, 41.2], baseline=[17.8, 25.6, 18.5, 19.1, 54.7])
    [s] = suite.summary([row], {row.key: res})
    assert s["verdict"] == "met" and s["runs_met"] == (3, 5)
    line = suite.table([s], smoke=False).splitlines()[2]
    assert line.endswith("met, 3 of 5 runs"), line
    assert suite.table([s], smoke=True).splitlines()[2].endswith("(smoke)")


def test_a_value_target_counts_values_and_a_row_without_one_counts_nothing() -> None:
    rows, suite = _suite()
    rtt = next(r for r in rows.ROWS if r.key == "rtt-poll")  # target < 10 us
    [s] = suite.summary([rtt], {rtt.key: suite.Result(values=[3.5, 12.0, 4.0])})
    assert s["verdict"] == "met" and s["runs_met"] == (2, 3)
    views = next(r for r in rows.ROWS if r.key == "buffer-tx-views")  # no target
    [s] = suite.summary([views], {views.key: suite.Result(values=[5.0], baseline=[50.0])})
    assert s["verdict"] is None and s["runs_met"] is None
    assert suite.table([s], smoke=False).splitlines()[2].rstrip().endswith("-")


def test_a_ratio_row_whose_baselines_all_failed_was_judged_in_no_run() -> None:
    rows, suite = _suite()
    row = next(r for r in rows.ROWS if r.key == "packed-tx")
    [s] = suite.summary([row], {row.key: suite.Result(values=[40.0, 41.0])})
    assert s["verdict"] == "not met" and s["runs_met"] == (0, 0)
    assert suite.table([s], smoke=False).splitlines()[2].endswith("not met, no run judged")
