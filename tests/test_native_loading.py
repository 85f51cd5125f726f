"""How the C library is found, checked and built, and that C and Python agree on constants."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import memif_ct
from memif_ct import _native, constants, protocol

REPO = Path(__file__).resolve().parent.parent


def test_every_c_constant_has_an_equal_python_twin():
    table = _native.c_constants()
    assert len(table) >= 30
    for name, value in table.items():
        assert hasattr(constants, name), f"constants.{name} is missing (C has {value:#x})"
        assert getattr(constants, name) == value, f"{name}: C {value:#x} != Python {getattr(constants, name):#x}"


def test_ring_size_math_agrees_between_c_and_the_sans_io_protocol():
    """protocol.py checks ring bounds without the library; it must size rings as C lays them."""
    cl = _native.cacheline_size()
    for log2 in range(constants.MIN_LOG2_RING_SIZE, constants.MAX_LOG2_RING_SIZE + 1):
        assert protocol.ring_bytes(log2, cl) == _native.ring_bytes(log2), f"log2_ring_size={log2}"


def test_abi_and_identity():
    info = memif_ct.library_info()
    assert info["abi_version"] == _native.ABI_VERSION
    assert info["cacheline_size"] in (64, 128)
    assert Path(str(info["library_path"])).parent == Path(memif_ct.__file__).parent
    assert "cacheline=" in str(info["build_info"])


def _import_with(env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **env_extra)
    env.pop("MEMIF_CT_LIBRARY", None) if "MEMIF_CT_LIBRARY" not in env_extra else None
    # Import the same memif_ct the tests use, from wherever it is installed.
    code = (
        f"import sys; sys.path.insert(0, {str(Path(memif_ct.__file__).parent.parent)!r}); "
        "import memif_ct; print(memif_ct.library_info()['library_path'])"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _fake_library(tmp_path: Path, abi: int) -> Path:
    src = tmp_path / "fake.c"
    src.write_text(f"unsigned memif_ct_abi_version(void) {{ return {abi}; }}\n")
    lib = tmp_path / "libmemif_ct.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


def test_abi_mismatch_fails_with_a_clear_message(tmp_path):
    lib = _fake_library(tmp_path, 99)
    r = _import_with({"MEMIF_CT_LIBRARY": str(lib)}, tmp_path)
    assert r.returncode != 0
    assert "ABI version 99" in r.stderr and f"ABI version {_native.ABI_VERSION}" in r.stderr


def test_missing_library_fails_with_a_clear_message(tmp_path):
    r = _import_with({"MEMIF_CT_LIBRARY": str(tmp_path / "nope.so")}, tmp_path)
    assert r.returncode != 0
    assert "C library is missing" in r.stderr and "pip install" in r.stderr


def test_decoy_in_cwd_and_ld_library_path_is_never_loaded(tmp_path):
    _fake_library(tmp_path, 99)  # libmemif_ct.so in cwd and on LD_LIBRARY_PATH
    r = _import_with({"LD_LIBRARY_PATH": str(tmp_path)}, tmp_path)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).parent == Path(memif_ct.__file__).parent


def test_build_without_a_compiler_says_so(tmp_path):
    for name in ("setup.py", "pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "csrc", tmp_path / "csrc")
    shutil.copytree(REPO / "memif_ct", tmp_path / "memif_ct", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = dict(os.environ, CC="memif-ct-no-such-compiler")
    r = subprocess.run(
        [sys.executable, "setup.py", "build_ext"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0
    assert "no C compiler found" in r.stderr + r.stdout
