"""memif-ct's benchmarks: ``python -m benchmarks`` runs the suite (benchmarks/suite.py).

They measure the installed memif-ct, never the source tree (which has no compiled library in a
checkout): run from the repository root, its directory is taken off ``sys.path`` here, before
anything imports ``memif_ct``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if "memif_ct" not in sys.modules:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT]
