"""``python -m benchmarks``: the benchmark suite."""

import sys

from benchmarks.suite import main

sys.exit(main())
