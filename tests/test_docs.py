"""The documentation site's pages that restate facts kept elsewhere agree with their source.

The site itself is built with warnings as errors by ``.ci/run`` (``mkdocs build --strict``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from memif_ct import config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
COMMANDS = ["", "info", "loopback", "pktgen", "sink", "echo", "forward", "ping", "capture"]


def help_text(command: str) -> str:
    env = dict(os.environ, COLUMNS="100")
    args = [sys.executable, "-m", "memif_ct", *([command] if command else []), "--help"]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=True)
    return r.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=[c or "top" for c in COMMANDS])
def test_cli_page_is_the_commands_own_help(command: str) -> None:
    page = (DOCS / "cli.md").read_text()
    heading = f"## memif-ct {command or '(top level)'}\n\n```text\n"
    assert heading in page, f"docs/cli.md has no section for {command or 'the top level'}"
    block = page.split(heading, 1)[1].split("```\n", 1)[0]
    assert block == help_text(command), f"docs/cli.md is stale for memif-ct {command}: regenerate it"


def test_devargs_page_lists_every_key_and_which_are_dpdks() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \| (yes|no)[^|]*\|", (DOCS / "devargs.md").read_text(), re.MULTILINE)
    documented = {key: dpdk == "yes" for key, dpdk in rows}
    assert documented == {o.key: o.dpdk for o in config._OPTIONS}


def test_every_page_in_the_nav_exists_and_every_page_is_in_the_nav() -> None:
    nav = re.findall(r"^  - [^:]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE)
    assert sorted(nav) == sorted(p.name for p in DOCS.glob("*.md"))
    assert {"tutorial.md", "api.md", "cli.md", "devargs.md", "architecture.md", "security.md", "performance.md",
            "troubleshooting.md"} <= set(nav)


def test_performance_chart_is_drawn_from_the_script(tmp_path: Path) -> None:
    script = tmp_path / "perf_chart.py"
    script.write_text((DOCS / "perf_chart.py").read_text())
    (tmp_path / "performance.json").write_text((DOCS / "performance.json").read_text())
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    assert (tmp_path / "performance.svg").read_text() == (DOCS / "performance.svg").read_text()
