"""Shared test setup.

Children (``python -m memif_ct ...``, peer scripts, examples) must import the same memif_ct as
the tests: in CI the installed package, since a clean checkout's source tree has no compiled
library. PYTHONSAFEPATH keeps Python from putting the cwd or the script's directory first.
"""

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test helpers (ringpair, testpmd, peers) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# The burst path's C functions take their arguments without ctypes' conversions (_native, "the
# burst path"): checked here, in this process and the children, so that an address passed as an
# int fails a test instead of being cut to 32 bits. test_native_loading runs one child unchecked.
os.environ.setdefault("MEMIF_CT_CHECK_CALLS", "1")

import memif_ct
from testpmd_retry import pytest_runtest_protocol, pytest_terminal_summary  # noqa: F401  (hooks)

_PACKAGE_PARENT = str(Path(memif_ct.__file__).resolve().parent.parent)
os.environ["PYTHONSAFEPATH"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")) if p)

# A shell without job control starts a background command with SIGINT ignored, and an ignored
# signal stays ignored across exec: every child would then ignore Ctrl-C (as under nohup), and the
# tests that stop the examples with SIGINT would wait them out. A handled signal is reset to the
# default in a child, so handle it here as an interactive run does.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def sockdir() -> Iterator[str]:
    """A short directory for socket files (sun_path holds 107 bytes; tmp_path can be longer)."""
    d = tempfile.mkdtemp(prefix="mct", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
