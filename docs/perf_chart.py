"""Draw docs/performance.svg: the README's measured ranges against testpmd <-> testpmd.

    python docs/perf_chart.py

The figures are those of the README's "Performance" section (benchmarks/bench_testpmd.py, six
runs on the 2-core CI machine, 64-byte frames, bursts of 256); this script only draws them.
"""

from __future__ import annotations

from pathlib import Path

# (path, lowest and highest ratio to testpmd <-> testpmd measured, Mpps range)
ROWS = [
    ("tx_burst_packed -> testpmd rxonly", 0.5, 1.6, "25-56 Mpps"),
    ("testpmd txonly -> rx_burst_into", 0.4, 1.2, "20-58 Mpps"),
    ("testpmd txonly -> rx_burst (bytes)", 0.2, 0.6, "10-11 Mpps"),
]
WIDTH, LEFT, RIGHT, ROW_H, TOP = 720, 250, 110, 34, 40
MAX_RATIO = 2.0


def x(ratio: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * ratio / MAX_RATIO


def main() -> None:
    height = TOP + ROW_H * len(ROWS) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             'font-family="sans-serif" font-size="13">',
             f'<text x="{LEFT}" y="20">memif-ct as a ratio to testpmd &#8596; testpmd (range over six runs)</text>']
    for tick in (0.0, 0.5, 1.0, 1.5, 2.0):
        parts.append(f'<line x1="{x(tick):.1f}" y1="{TOP - 6}" x2="{x(tick):.1f}" y2="{height - 30}" '
                     f'stroke="{"#444" if tick == 1.0 else "#ccc"}"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{height - 14}" text-anchor="middle">{tick:g}&#215;</text>')
    for i, (label, lo, hi, mpps) in enumerate(ROWS):
        y = TOP + i * ROW_H
        parts.append(f'<text x="{LEFT - 8}" y="{y + 17}" text-anchor="end">{label}</text>')
        parts.append(f'<rect x="{x(lo):.1f}" y="{y + 5}" width="{x(hi) - x(lo):.1f}" height="16" fill="#4a7ab5"/>')
        parts.append(f'<text x="{x(hi) + 6:.1f}" y="{y + 17}">{mpps}</text>')
    parts.append("</svg>")
    Path(__file__).with_name("performance.svg").write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
