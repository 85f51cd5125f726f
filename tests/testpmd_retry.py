"""pytest plugin: a test failed by testpmd 22.11's known crash is run once more, and says so.

testpmd 22.11 can die of SIGSEGV when its memif peer disconnects while it is still forwarding
(tests/TESTPMD_NOTES.md). The harness reports that as a TestPmdError whose text says the
process "exited (status -11)". A test that fails with that, and only with that, is run once
more, with a line on the terminal and in the summary; a second failure of any kind fails it.
Any other failure, ours or testpmd's, is reported as it is: nothing else is ever retried.
"""

from __future__ import annotations

import re
import sys

import pytest
from _pytest.reports import TestReport
from _pytest.runner import runtestprotocol

TESTPMD_SEGFAULT = re.compile(r"TestPmdError: testpmd .*exited \(status -11\)")

_retried: list[str] = []


def crashed_testpmd(reports: list[TestReport]) -> bool:
    """True if the run failed, and every failed phase failed with testpmd's SIGSEGV."""
    failed = [r for r in reports if r.failed]
    return bool(failed) and all(TESTPMD_SEGFAULT.search(str(r.longrepr)) for r in failed)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool:
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = runtestprotocol(item, nextitem=nextitem, log=False)
    if crashed_testpmd(reports):
        line = (f"{item.nodeid}: testpmd died of SIGSEGV (DPDK 22.11's crash when its peer goes, "
                "TESTPMD_NOTES.md); running the test once more")
        print(f"\n[testpmd-retry] {line}", file=sys.stderr)
        _retried.append(item.nodeid)
        if hasattr(item, "_initrequest"):
            item._initrequest()  # fresh fixtures for the second run
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _retried:
        terminalreporter.write_line(
            f"testpmd-retry: {len(_retried)} test(s) run once more after testpmd died of SIGSEGV: "
            + ", ".join(_retried))
