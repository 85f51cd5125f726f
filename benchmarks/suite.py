"""memif-ct against DPDK testpmd: every row of the README's performance table, in one command.

    python -m benchmarks [--repeat 5] [--seconds 2] [--rows ROW,...] [--json FILE] [--plot FILE.png]
    python -m benchmarks --smoke         # about a second per row, no targets judged

Each row is a figure (memif-ct) and, for most, a baseline measured in the same run right before
the row (testpmd against testpmd, or the copy path); the table shows the median over
``--repeat`` runs, the ratio of the two (the median of the per-run ratios), the target set in
issue 10 and the spread (lowest-highest over the runs). The header names the machine and the
exact command. Needs dpdk-testpmd with the memif PMD, as the interop tests do, and memif-ct
installed (the suite measures the installed package, never the source tree). Not part of the
test run; a smoke run of it is (tests/test_bench_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # python benchmarks/suite.py: run as the package's module all the same
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import benchmarks  # noqa: F401  (it takes the source tree off sys.path again)

    __package__ = "benchmarks"

import memif_ct

from . import lab, rows
from .rows import BASELINES, ROWS, Row, Settings

_TARGET_RE = re.compile(r"^(>=|<) ([\d.]+)")


@dataclass
class Result:
    """One row's (or baseline's) figures over the runs, in its unit; baselines run by run."""

    values: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    cpu: list[float | None] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0  # runs in which the measurement raised (its traceback went to stderr)

    def ratios(self) -> list[float]:
        if not self.baseline:
            return []
        return [v / b for v, b in zip(self.values, self.baseline, strict=True) if b]


def machine() -> dict[str, Any]:
    """CPU model, cores, kernel, Python, DPDK and memif-ct versions."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    try:
        dpdk = subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        dpdk = "unknown"
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "dpdk": dpdk, "memif_ct": memif_ct.__version__,
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def row_value(row: Row, fig: lab.Figure) -> float:
    if row.unit == "Gbit/s":
        return fig.gbps
    if row.unit == "us":
        return float(fig.extra["median_us"])  # type: ignore[arg-type]
    return fig.mpps


def baseline_value(row: Row, fig: lab.Figure) -> float:
    if row.unit == "Mpkt/CPU-s":
        cpu = fig.cpu_s if row.baseline_cpu == "cpu_s" else fig.extra.get(row.baseline_cpu)
        return fig.packets / float(cpu) / 1e6 if cpu else 0.0  # type: ignore[arg-type]
    return fig.gbps if row.unit == "Gbit/s" else fig.mpps


def run(selected: list[Row], repeat: int, seconds: float, prefix: str,
        log: Any = sys.stderr) -> dict[str, Result]:
    """Measure every selected row ``repeat`` times, each right after its own baseline.

    A row's baseline is measured anew just before it, in every run: on these shared machines
    the speed of the whole host can change by 2-3x within minutes, so a baseline taken once
    at the start of a run could be divided into a row measured in another phase. A row derived
    from another (the CPU cost) shares that row's baseline."""
    wanted = {r.key for r in selected} | {r.derived_from for r in selected if r.derived_from}
    measured = [r for r in ROWS if r.key in wanted and r.measure]
    bases = {b.key: b for b in BASELINES}
    for r in selected:
        source = next((m for m in ROWS if m.key == r.derived_from), None)
        if source is not None and source.baseline != r.baseline:
            raise SystemExit(f"row {r.key}: baseline {r.baseline} differs from {source.key}'s ({source.baseline})")
    settings = Settings(seconds, {})
    results = {r.key: Result() for r in selected}
    with lab.Bench(prefix) as bench:
        for n in range(repeat):
            figs: dict[str, lab.Figure] = {}
            base_figs: dict[str, lab.Figure] = {}  # by row: the baseline measured just before it
            for r in measured:
                try:
                    if r.baseline:
                        print(f"[run {n + 1}/{repeat}] baseline {r.baseline} for {r.key}", file=log, flush=True)
                        base_figs[r.key] = bases[r.baseline].measure(bench, settings)
                    print(f"[run {n + 1}/{repeat}] {r.key}", file=log, flush=True)
                    figs[r.key] = r.measure(bench, settings)  # type: ignore[misc]
                except Exception:  # one row failing must not cost the others' minutes
                    bench.quiesce()
                    figs.pop(r.key, None)
                    print(f"[run {n + 1}/{repeat}] {r.key} FAILED:\n{traceback.format_exc()}", file=log, flush=True)
            for r in selected:
                res = results[r.key]
                source = r.derived_from or r.key
                if source not in figs:
                    res.failed += 1
                    continue
                fig = figs[source]
                if r.derived_from:
                    res.values.append(fig.mpps_per_cpu_s or 0.0)
                else:
                    res.values.append(row_value(r, fig))
                if r.baseline:
                    res.baseline.append(baseline_value(r, base_figs[source]))
                res.cpu.append(None if r.derived_from or r.unit == "us" else fig.mpps_per_cpu_s)
                res.extra.append({k: v for k, v in fig.extra.items() if isinstance(v, (int, float, str))})
    return results


def _meets(row: Row, figure: float) -> bool:
    m = _TARGET_RE.match(row.target)
    assert m is not None
    limit = float(m.group(2))
    return figure >= limit if m.group(1) == ">=" else figure < limit


def judge(row: Row, ratio: float | None, value: float) -> str:
    """'met' / 'not met' against the row's target, by the median; '' when it has none."""
    if not _TARGET_RE.match(row.target):
        return ""
    figure = ratio if row.target.endswith("x") else value
    return "not met" if figure is None else ("met" if _meets(row, figure) else "not met")


def runs_met(row: Row, res: Result) -> tuple[int, int] | None:
    """In how many runs, of how many judged, the row's own figure (its ratio, for a ratio
    target) met the target: a median can meet it while the runs straddle it. None when the
    row has no target."""
    if not _TARGET_RE.match(row.target):
        return None
    figures = res.ratios() if row.target.endswith("x") else res.values
    return sum(_meets(row, f) for f in figures), len(figures)


def summary(selected: list[Row], results: dict[str, Result]) -> list[dict[str, Any]]:
    out = []
    for r in selected:
        res = results[r.key]
        if not res.values:
            out.append({"key": r.key, "label": r.label, "unit": r.unit, "value": None, "failed": res.failed})
            continue
        ratios = res.ratios()
        ratio = statistics.median(ratios) if ratios else None
        value = statistics.median(res.values)
        cpus = [c for c in res.cpu if c]
        out.append({
            "key": r.key, "label": r.label, "unit": r.unit, "value": value,
            "values": res.values, "spread": [min(res.values), max(res.values)],
            "baseline_key": r.baseline,
            "baseline_label": next((b.label for b in BASELINES if b.key == r.baseline), None),
            "baseline": statistics.median(res.baseline) if res.baseline else None,
            "baselines": res.baseline,
            "ratio": ratio, "ratios": ratios, "ratio_spread": [min(ratios), max(ratios)] if ratios else None,
            "target": r.target or None, "verdict": judge(r, ratio, value) or None,
            "runs_met": runs_met(r, res),  # [met, judged], or None
            "mpkt_per_cpu_s": statistics.median(cpus) if cpus else None, "extra": res.extra,
            "failed": res.failed,
        })
    return out


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def table(summary_rows: list[dict[str, Any]], smoke: bool) -> str:
    head = (f"{'row':<14}{'figure':>10} {'unit':<11}{'baseline':>10}{'ratio':>8}  {'target':<10}"
            f"{'spread (figure)':>18}{'spread (ratio)':>16}  {'Mpkt/CPU-s':>10}  verdict")
    lines = [head, "-" * len(head)]
    for s in summary_rows:
        if s["value"] is None:
            lines.append(f"{s['key']:<14}FAILED in every run (tracebacks on stderr)")
            continue
        spread = f"{s['spread'][0]:.2f}-{s['spread'][1]:.2f}"
        rspread = "-" if s["ratio_spread"] is None else f"{s['ratio_spread'][0]:.2f}-{s['ratio_spread'][1]:.2f}"
        ratio = "-" if s["ratio"] is None else f"{s['ratio']:.2f}x"
        verdict = "(smoke)" if smoke and s["verdict"] else (s["verdict"] or "")
        if s["verdict"] and not smoke:  # the median's verdict, and how many runs met the target
            met, judged = s["runs_met"]
            verdict += f", {met} of {judged} runs" if judged else ", no run judged"
        if s["failed"]:
            verdict += f" FAILED in {s['failed']} run(s)"
        lines.append(f"{s['key']:<14}{s['value']:>10.2f} {s['unit']:<11}{_fmt(s['baseline']):>10}{ratio:>8}  "
                     f"{s['target'] or '':<10}{spread:>18}{rspread:>16}  {_fmt(s['mpkt_per_cpu_s']):>10}  {verdict}")
    lines.append("")
    for s in summary_rows:
        base = f"  vs  {s['baseline_label']}" if s.get("baseline_label") else ""
        lines.append(f"  {s['key']:<14}{s['label']}{base}")
    return "\n".join(lines)


def plot(summary_rows: list[dict[str, Any]], path: str, title: str) -> None:
    """A horizontal bar chart of each row's ratio to its baseline (rows without one left out)."""
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib: pip install 'memif-ct[bench]' (or: pip install matplotlib)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [s for s in summary_rows if s.get("ratio") is not None]
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(drawn) + 1.5))
    ys = range(len(drawn))
    ax.barh(ys, [s["ratio"] for s in drawn], color="#4a7ab5",
            xerr=[[s["ratio"] - s["ratio_spread"][0] for s in drawn],
                  [s["ratio_spread"][1] - s["ratio"] for s in drawn]], capsize=3)
    for y, s in zip(ys, drawn, strict=True):
        m = _TARGET_RE.match(s["target"] or "")
        if m and (s["target"] or "").endswith("x"):
            ax.plot([float(m.group(2))] * 2, [y - 0.4, y + 0.4], color="#c0392b")
    ax.axvline(1.0, color="#444", linewidth=1)
    ax.set_yticks(list(ys), [s["key"] for s in drawn])
    ax.invert_yaxis()
    ax.set_xlabel("ratio to the baseline measured in the same run (bar: median, whisker: spread, red: target)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def select(spec: str | None) -> list[Row]:
    if not spec:
        return list(ROWS)
    keys = [k.strip() for k in spec.split(",") if k.strip()]
    known = {r.key: r for r in ROWS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SystemExit(f"--rows: unknown row(s) {', '.join(unknown)}; rows are: {', '.join(known)}")
    return [known[k] for k in keys]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", help=f"comma-separated rows to run (default all): {','.join(r.key for r in ROWS)}")
    ap.add_argument("--repeat", type=int, default=5, help="runs; each row shows the median (default 5)")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement (default 2)")
    ap.add_argument("--smoke", action="store_true",
                    help="one run of about a second per row (--repeat 1 --seconds 0.3); no target judged")
    ap.add_argument("--json", metavar="FILE", help="write the figures, baselines and machine as JSON")
    ap.add_argument("--plot", metavar="FILE.png", help="draw the ratios as a bar chart (needs matplotlib)")
    ap.add_argument("--prefix", default=f"memif-ct-bench-{os.getpid()}",
                    help="prefix of the temporary directory and testpmd --file-prefix (default memif-ct-bench-PID)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.repeat, args.seconds = 1, 0.3
        lab.WARMUP_S = rows.WARMUP_S = 0.1
    if "/" in args.prefix:
        ap.error(f"--prefix {args.prefix!r}: a name, not a path (it becomes /tmp/PREFIX-* and testpmd's --file-prefix)")
    if args.repeat < 1 or args.seconds <= 0:
        ap.error("--repeat must be >= 1 and --seconds > 0")
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (fail before minutes of measuring, not after)
        except ImportError:
            ap.error("--plot needs matplotlib: pip install 'memif-ct[bench]' (or: pip install matplotlib)")
    selected = select(args.rows)
    command = "python -m benchmarks " + shlex.join(argv)
    info = machine()
    try:
        lab.testpmd.require_testpmd()
    except BaseException as e:  # pytest's Failed is a BaseException
        print(f"benchmarks: {e}", file=sys.stderr)
        return 1
    t0 = time.monotonic()
    results = run(selected, args.repeat, args.seconds, args.prefix)
    rows_out = summary(selected, results)
    header = (f"memif-ct {info['memif_ct']} vs DPDK {info['dpdk']}: {info['cpu']}, {info['cores']} cores, "
              f"Linux {info['kernel']}, Python {info['python']}, load {info['load_avg']}\n"
              f"$ {command}\n"
              f"64-byte frames, one queue, bursts of {rows.BURST} unless the row says otherwise; "
              f"median of {args.repeat} run(s) of {args.seconds:g} s per measurement"
              f"{'; SMOKE RUN: no target judged' if args.smoke else ''}")
    print(header)
    print(table(rows_out, args.smoke))
    print(f"({time.monotonic() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "command": command, "repeat": args.repeat, "seconds": args.seconds,
                       "smoke": args.smoke, "rows": rows_out}, f, indent=1)
    if args.plot:
        plot(rows_out, args.plot, header.split(": ")[0] + f", {info['cores']} cores, median of {args.repeat} runs")
    return 1 if any(row["failed"] for row in rows_out) else 0


if __name__ == "__main__":  # python benchmarks/suite.py: the same as python -m benchmarks
    sys.exit(main())
