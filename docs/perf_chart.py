"""Draw docs/performance.svg: memif-ct's figures as ratios to the baseline of the same run.

    python docs/perf_chart.py                 # from docs/performance.json, the README's run
    python docs/perf_chart.py RESULTS.json    # what `python -m benchmarks --json RESULTS.json` wrote

Each row with a baseline is drawn as its spread of ratios over the runs (lowest to highest),
labelled with the median ratio and figure; rows without one (absolute figures) are left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WIDTH, LEFT, RIGHT, ROW_H, TOP = 760, 150, 170, 26, 40
MAX_RATIO = 2.0


def x(ratio: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * min(ratio, MAX_RATIO) / MAX_RATIO


def from_suite(path: str) -> tuple[str, list[tuple[str, float, float, str]]]:
    """The title and rows of a suite run's JSON (rows without a baseline are not ratios: left out)."""
    report = json.loads(Path(path).read_text())
    m = report["machine"]
    title = (f"memif-ct / baseline of the same run, range over {report['repeat']} runs "
             f"({m['cores']} cores, DPDK {m['dpdk']})")
    rows = [(r["key"], r["ratio_spread"][0], r["ratio_spread"][1], f"{r['ratio']:.2f}x, {r['value']:.3g} {r['unit']}")
            for r in report["rows"] if r.get("ratio") is not None]
    return title, rows


def draw(title: str, rows: list[tuple[str, float, float, str]]) -> str:
    height = TOP + ROW_H * len(rows) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             'font-family="sans-serif" font-size="13">',
             f'<text x="{LEFT}" y="20">{title}</text>']
    for tick in (0.0, 0.5, 1.0, 1.5, 2.0):
        parts.append(f'<line x1="{x(tick):.1f}" y1="{TOP - 6}" x2="{x(tick):.1f}" y2="{height - 30}" '
                     f'stroke="{"#444" if tick == 1.0 else "#ccc"}"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 14}" text-anchor="middle">{tick:g}&#215;</text>')
    for i, (label, lo, hi, note) in enumerate(rows):
        y = TOP + i * ROW_H
        parts.append(f'<text x="{LEFT - 8}" y="{y + 17}" text-anchor="end">{label}</text>')
        width = max(x(hi) - x(lo), 2.0)  # a spread of one run is a line, not nothing
        parts.append(f'<rect x="{x(lo):.1f}" y="{y + 5}" width="{width:.1f}" height="16" fill="#4a7ab5"/>')
        parts.append(f'<text x="{x(hi) + 6:.1f}" y="{y + 17}">{note}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> None:
    title, rows = from_suite(argv[0] if argv else str(Path(__file__).with_name("performance.json")))
    Path(__file__).with_name("performance.svg").write_text(draw(title, rows))


if __name__ == "__main__":
    main(sys.argv[1:])
