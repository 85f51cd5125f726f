"""Packaging (issue 11): licence metadata, the sdist's contents, the wheel configuration, and the
glibc floor of the library as built.

The wheel itself is built, repaired, checked and tested by ``.ci/run`` (stage "wheel").
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from memif_ct import _native

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def load_check_wheel() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_wheel", ROOT / ".ci" / "check_wheel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_license_file_and_metadata_agree_with_meson() -> None:
    meson_license = re.search(r"license: '([^']+)'", (ROOT / "meson.build").read_text())
    assert meson_license is not None
    assert PYPROJECT["project"]["license"] == meson_license[1] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_sdist_holds_every_tracked_file(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: nothing to compare the sdist with")
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split())
    tracked -= {".gitignore"}
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (sdist,) = tmp_path.glob("memif_ct-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = sorted(tracked - names)
    assert missing == [], f"the sdist leaves out {missing}: add them to MANIFEST.in"
    for needed in (".ci/run", "benchmarks/bench_burst.py", "tests/TESTPMD_NOTES.md", "LICENSE", "mkdocs.yml"):
        assert needed in names


def test_cibuildwheel_builds_one_py3_none_wheel_per_platform_and_tests_it() -> None:
    cibw = PYPROJECT["tool"]["cibuildwheel"]
    assert cibw["build"] == ["cp310-*", "cp311-*", "cp312-*", "cp313-*"]
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    linux = cibw["linux"]
    assert linux["archs"] == ["x86_64", "aarch64"]
    assert linux["musllinux-x86_64-image"] and linux["musllinux-aarch64-image"]
    (override,) = cibw["overrides"]
    assert override["select"] == "*-*_aarch64"
    assert override["environment"] == {"MEMIF_CT_CACHELINE_SIZE": "128"}
    commands = cibw["test-command"]
    assert commands[0].startswith("memif-ct loopback")
    for path in re.findall(r"\{project\}/(\S+)", commands[1]):
        assert (ROOT / path).is_file(), f"test-command names {path}, which does not exist"


def test_glibc_floor_of_the_library_is_the_one_ci_expects() -> None:
    check_wheel = load_check_wheel()
    symbols = check_wheel.glibc_symbols(_native.LIBRARY_PATH)
    floor = max([check_wheel.BASELINE, *(v for s, v in symbols.items() if s not in check_wheel.MOVED_INTO_LIBC)])
    above = sorted(s for s, v in symbols.items() if v > check_wheel.BASELINE and s not in check_wheel.MOVED_INTO_LIBC)
    assert floor == check_wheel.EXPECTED_FLOOR, f"symbols above glibc 2.17: {above}"
    assert "memcpy" in symbols  # the reader sees the library's imports at all
