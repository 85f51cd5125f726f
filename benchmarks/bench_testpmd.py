#!/usr/bin/env python3
"""memif-ct's packed and list APIs against DPDK: the suite's rows for them (benchmarks/suite.py).

    python benchmarks/bench_testpmd.py [--seconds 3] [--repeat 3]

Kept for its old command line; the measurements are the suite's rows packed-tx, packed-rx,
list-rx and list-tx, each a ratio to testpmd txonly -> testpmd rxonly measured in the same run.
``python -m benchmarks`` runs every row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # python benchmarks/bench_testpmd.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import benchmarks  # noqa: F401  (it takes the source tree off sys.path again)

from benchmarks import suite


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    return suite.main(["--rows", "packed-tx,packed-rx,list-rx,list-tx",
                       "--seconds", str(args.seconds), "--repeat", str(args.repeat)])


if __name__ == "__main__":
    sys.exit(main())
