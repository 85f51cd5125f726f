"""The harness's one retry: a test failed by testpmd 22.11's SIGSEGV runs once more, and only
that; every other failure is reported at once (tests/testpmd_retry.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CASES = '''
from pathlib import Path

import pytest


class TestPmdError(RuntimeError):
    pass


def _runs(tmp_path_factory, name):
    counter = Path(str(tmp_path_factory.getbasetemp())) / name
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return n


def test_segfault_once(tmp_path_factory):
    if _runs(tmp_path_factory, "once") == 1:
        raise TestPmdError("testpmd client (x, socket 'y'): exited (status -11) while waiting for z")


def test_segfault_twice(tmp_path_factory):
    _runs(tmp_path_factory, "twice")
    raise TestPmdError("testpmd server (x, socket 'y'): exited (status -11) while waiting for z")


def test_our_failure(tmp_path_factory):
    assert _runs(tmp_path_factory, "ours") > 1, "a failure of ours"


def test_other_testpmd_death(tmp_path_factory):
    if _runs(tmp_path_factory, "other") == 1:
        raise TestPmdError("testpmd client (x, socket 'y'): exited (status 1) while waiting for z")
'''


def test_only_a_testpmd_segfault_is_run_again_and_it_says_so(tmp_path: Path) -> None:
    (tmp_path / "test_cases.py").write_text(CASES)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "testpmd_retry", "-p", "no:cacheprovider", "-q", "-rA",
         "test_cases.py"],
        cwd=tmp_path, env={"PYTHONPATH": str(HERE), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "PASSED test_cases.py::test_segfault_once" in out  # crashed once, passed the second time
    assert "FAILED test_cases.py::test_segfault_twice" in out  # crashed twice: a failure
    assert "FAILED test_cases.py::test_our_failure" in out  # ours: never retried
    assert "FAILED test_cases.py::test_other_testpmd_death" in out  # not the known crash: not retried
    assert out.count("[testpmd-retry]") == 2, out
    assert "2 test(s) run once more after testpmd died of SIGSEGV" in out, out
    assert "1 passed" in out and "3 failed" in out, out
