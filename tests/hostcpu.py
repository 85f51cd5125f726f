"""Test helper: what this host's CPU offers that the C library decides on when it loads."""

from __future__ import annotations

import os


def has_rep_movsb() -> bool:
    """x86-64 with ERMS (the ``erms`` flag): where the library's default copy method is movsb."""
    if os.uname().machine != "x86_64":
        return False
    with open("/proc/cpuinfo") as f:
        return any(line.startswith("flags") and "erms" in line.split() for line in f)
