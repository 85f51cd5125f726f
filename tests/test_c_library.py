"""The C data-path library on its own: built with meson, tested in C, installed, used via pkg-config.

Each build is made once per session in a temporary directory:

* ``plain``: the default build; runs the C ring and pool tests, ``meson test``, the exported-symbol check,
  and ``meson install --destdir`` followed by compiling ``examples/c/echo_loopback.c`` against the
  staged install with pkg-config, as a C program that never touches Python would.
* ``sanitize``: ``-Db_sanitize=address,undefined``; the ring and pool tests must be clean under ASan
  (with leak checks) and UBSan.
* ``cacheline128``: ``-Dcacheline_size=128``; the library must put tail at 128 and the
  descriptors at 256 (memif-protocol.md section 5), and say so in its pkg-config Cflags.

Beside the builds: the public header compiles as C++ and lays every struct out as C does, and
meson.build and setup.py compile the same sources with the same flags (csrc/sources.txt,
csrc/cflags.txt).

meson and ninja are required: a missing tool fails these tests, it never skips them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from hostcpu import has_rep_movsb

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
HEADER = CSRC / "memif_ct.h"
TESTS_C = ROOT / "tests" / "c"
EXAMPLE = ROOT / "examples" / "c" / "echo_loopback.c"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)
INSTALL_HINT = (
    "install them with `pip install meson ninja` (or `pip install -e .[test]`), "
    "or on Debian/Ubuntu `apt-get install -y meson ninja-build`"
)
SANITIZER_ENV = {
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:strict_string_checks=1",
}
TIMEOUT_S = 300


def _tail(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _check(proc: subprocess.CompletedProcess[str], what: str) -> str:
    assert proc.returncode == 0, (
        f"{what} failed with exit code {proc.returncode}: {' '.join(map(str, proc.args))}\n"
        f"--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}"
    )
    return proc.stdout


def _meson() -> str:
    """Path of meson; fails (never skips) with install instructions when meson or ninja is missing."""
    meson = shutil.which("meson")
    ninja = shutil.which("ninja") or shutil.which("samu")
    missing = [name for name, path in (("meson", meson), ("ninja", ninja)) if path is None]
    if missing:
        pytest.fail(
            f"building the C library needs {' and '.join(missing)}, not found on PATH: {INSTALL_HINT}"
        )
    assert meson is not None
    return meson


class MesonBuild:
    """One configured and compiled meson build directory."""

    def __init__(self, meson: str, builddir: Path, options: Sequence[str], env: Mapping[str, str]) -> None:
        self.meson = meson
        self.dir = builddir
        self.options = list(options)
        self.env = dict(env)

    def setup_and_compile(self) -> None:
        _check(
            _run([self.meson, "setup", self.dir, ROOT, *self.options], env=self.env),
            f"meson setup {' '.join(self.options)}",
        )
        _check(_run([self.meson, "compile", "-C", self.dir], env=self.env), "meson compile")

    def run(self, program: str) -> subprocess.CompletedProcess[str]:
        exe = self.dir / program
        assert exe.is_file(), f"{exe} was not built"
        return _run([exe], env=self.env, cwd=self.dir)


def _assert_summary_clean(proc: subprocess.CompletedProcess[str], what: str) -> tuple[int, int]:
    output = proc.stdout + proc.stderr
    found = SUMMARY.findall(proc.stdout)
    failures = "\n".join(line for line in output.splitlines() if line.startswith(("FAIL", "not ok")))
    assert found, f"{what}: no 'N passed, M failed' line (exit {proc.returncode})\n{_tail(output)}"
    passed, failed = (int(n) for n in found[-1])
    assert failed == 0 and proc.returncode == 0, (
        f"{what}: {passed} passed, {failed} failed, exit code {proc.returncode}\n"
        f"{failures}\n--- stderr ---\n{_tail(proc.stderr)}"
    )
    assert passed > 0, f"{what}: ran no test"
    return passed, failed


@pytest.fixture(scope="session")
def meson_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MesonBuild]]:
    """Lazily built meson build directories, keyed by name; each is built at most once."""
    root = tmp_path_factory.mktemp("meson")
    configs: dict[str, tuple[list[str], dict[str, str]]] = {
        "plain": ([], {}),
        "sanitize": (["-Db_sanitize=address,undefined", "-Db_lundef=false"], SANITIZER_ENV),
        "cacheline128": (["-Dcacheline_size=128", "-Dexamples=false"], {}),
    }

    class Builds(dict[str, MesonBuild]):
        def __missing__(self, name: str) -> MesonBuild:
            options, env = configs[name]
            build = MesonBuild(_meson(), root / name, options, env)
            build.setup_and_compile()
            self[name] = build
            return build

    yield Builds()


def test_c_ring_tests_pass(meson_builds: dict[str, MesonBuild]) -> None:
    build = meson_builds["plain"]
    proc = build.run("test_ring")
    _assert_summary_clean(proc, "tests/c/test_ring.c")
    # Both copy methods ran where the CPU has rep movsb (x86-64 with ERMS), not just memcpy.
    if has_rep_movsb():
        assert proc.stdout.count("copy method movsb: available, tested") == 2, _tail(proc.stdout)


def test_c_pool_tests_pass(meson_builds: dict[str, MesonBuild]) -> None:
    build = meson_builds["plain"]
    _assert_summary_clean(build.run("test_pool"), "tests/c/test_pool.c")


def test_c_traffic_tests_pass(meson_builds: dict[str, MesonBuild]) -> None:
    _assert_summary_clean(meson_builds["plain"].run("test_traffic"), "tests/c/test_traffic.c")


def test_c_traffic_tests_pass_under_asan_and_ubsan(meson_builds: dict[str, MesonBuild]) -> None:
    proc = meson_builds["sanitize"].run("test_traffic")
    _assert_sanitizers_silent(proc)
    _assert_summary_clean(proc, "tests/c/test_traffic.c under ASan+UBSan")


def _assert_sanitizers_silent(proc: subprocess.CompletedProcess[str]) -> None:
    assert "runtime error:" not in proc.stderr, f"UBSan report:\n{_tail(proc.stderr)}"
    assert "ERROR: AddressSanitizer" not in proc.stderr, f"ASan report:\n{_tail(proc.stderr)}"
    assert "ERROR: LeakSanitizer" not in proc.stderr, f"LSan report:\n{_tail(proc.stderr)}"


def test_c_pool_tests_pass_under_asan_and_ubsan(meson_builds: dict[str, MesonBuild]) -> None:
    proc = meson_builds["sanitize"].run("test_pool")
    _assert_sanitizers_silent(proc)
    _assert_summary_clean(proc, "tests/c/test_pool.c under ASan+UBSan")


def test_c_ring_tests_pass_under_asan_and_ubsan(meson_builds: dict[str, MesonBuild]) -> None:
    build = meson_builds["sanitize"]
    proc = build.run("test_ring")
    _assert_sanitizers_silent(proc)
    _assert_summary_clean(proc, "tests/c/test_ring.c under ASan+UBSan")
    _assert_summary_clean(build.run("layout_probe"), "layout_probe under ASan+UBSan")
    if (build.dir / "cxx_header").is_file():  # built where meson found a C++ compiler
        _assert_summary_clean(build.run("cxx_header"), "tests/c/cxx_header.cpp under ASan+UBSan")
    _check(build.run("echo_loopback"), "echo_loopback under ASan+UBSan")


def test_meson_test_suite(meson_builds: dict[str, MesonBuild]) -> None:
    build = meson_builds["plain"]
    proc = _run([build.meson, "test", "-C", build.dir, "--print-errorlogs"], env=build.env)
    _check(proc, "meson test")
    assert re.search(r"^Ok:\s+[1-9]", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(r"^Fail:\s+0\s*$", proc.stdout, re.MULTILINE), proc.stdout
    if shutil.which("c++") or shutil.which("g++"):
        assert re.search(r"cxx_header\s+OK", proc.stdout), f"meson did not run the C++ header test:\n{proc.stdout}"


def _api_functions() -> set[str]:
    return set(re.findall(r"MEMIF_CT_API\s+[^;(]*?\b(memif_ct_\w+)\s*\(", HEADER.read_text()))


def test_shared_library_exports_exactly_the_public_api(meson_builds: dict[str, MesonBuild]) -> None:
    build = meson_builds["plain"]
    nm = shutil.which("nm")
    assert nm, "nm (binutils) is needed: apt-get install -y binutils"
    lib = build.dir / "libmemif_ct.so"
    out = _check(_run([nm, "-D", "--defined-only", lib]), "nm -D")
    exported = {line.split()[-1] for line in out.splitlines() if line.split()[1:2] == ["T"]}
    declared = _api_functions()
    assert len(declared) >= 20, f"parsed too few declarations from {HEADER}: {sorted(declared)}"
    assert exported == declared, (
        f"missing: {sorted(declared - exported)}; exported but not declared: {sorted(exported - declared)}"
    )


def test_installed_library_works_from_c_via_pkg_config(
    meson_builds: dict[str, MesonBuild], tmp_path: Path
) -> None:
    build = meson_builds["plain"]
    stage = tmp_path / "stage"
    _check(_run([build.meson, "install", "-C", build.dir, "--destdir", stage]), "meson install --destdir")
    pcs = sorted(stage.rglob("memif-ct.pc"))
    headers = sorted(stage.rglob("memif_ct.h"))
    assert len(pcs) == 1 and len(headers) == 1, (
        f"staged install lacks memif-ct.pc or memif_ct.h: {pcs} {headers}"
    )
    assert sorted(stage.rglob("libmemif_ct.a")), "static library not installed"
    pkg_config = shutil.which("pkg-config") or shutil.which("pkgconf")
    assert pkg_config, "pkg-config is needed: apt-get install -y pkg-config"
    env = {"PKG_CONFIG_PATH": str(pcs[0].parent), "PKG_CONFIG_SYSROOT_DIR": str(stage)}
    assert _check(_run([pkg_config, "--modversion", "memif-ct"], env=env), "pkg-config").strip() == "0.1.0"
    flags = _check(_run([pkg_config, "--cflags", "--libs", "memif-ct"], env=env), "pkg-config").split()
    assert any(f.startswith("-I" + str(stage)) for f in flags), flags

    cc = os.environ.get("CC", "cc").split()
    exe = tmp_path / "echo_loopback"
    compile_cmd: list[str | os.PathLike[str]] = [
        *cc,
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-o",
        exe,
        EXAMPLE,
        *flags,
    ]
    _check(_run(compile_cmd, cwd=tmp_path), "compiling examples/c/echo_loopback.c against the install")
    libdir = next(stage.rglob("libmemif_ct.so")).parent
    out = _check(_run([exe], env={"LD_LIBRARY_PATH": str(libdir)}), "echo_loopback")
    assert re.search(
        r"^S2M: client sent 4 packets, server received 4 packets, 14564 bytes", out, re.MULTILINE
    ), out
    assert re.search(
        r"^M2S: server echoed 4 packets, client received 4 packets, 14564 bytes", out, re.MULTILINE
    ), out
    assert "echo ok: 14564 bytes each way" in out, out


def test_cacheline_128_build_puts_tail_at_128_and_descriptors_at_256(
    meson_builds: dict[str, MesonBuild],
) -> None:
    build = meson_builds["cacheline128"]
    proc = build.run("layout_probe")
    _assert_summary_clean(proc, "layout_probe with cacheline_size=128")
    line = re.search(
        r"cacheline=(\d+) tail_offset=(-?\d+) desc_offset=(-?\d+) ring_bytes_log2_1=(\d+)", proc.stdout
    )
    assert line, proc.stdout
    assert tuple(int(v) for v in line.groups()) == (128, 128, 256, 256 + 2 * 16), proc.stdout
    pc = (build.dir / "meson-private" / "memif-ct.pc").read_text()
    assert "-DMEMIF_CT_CACHELINE_SIZE=128" in pc, f"consumers would compile the 64-byte layout:\n{pc}"
    # The whole ring and pool suites hold for the 128-byte layout too.
    _assert_summary_clean(build.run("test_ring"), "tests/c/test_ring.c with cacheline_size=128")
    _assert_summary_clean(build.run("test_pool"), "tests/c/test_pool.c with cacheline_size=128")


# ---- the header as C++ ---------------------------------------------------------------------


def test_header_compiles_as_cxx_and_lays_structs_out_as_c(
    meson_builds: dict[str, MesonBuild], tmp_path: Path
) -> None:
    """tests/c/cxx_header.cpp, built by g++ itself: the header compiles as strict C++17, every public
    struct has the size, alignment and offsets the C compiler gives it (tests/c/c_layout.c), and a
    C++ program drives the library (a burst, the eventfd signal, std::atomic indexes)."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed (Debian/Ubuntu: apt-get install -y g++); the C++ header check needs it")
    library = meson_builds["plain"].dir / "libmemif_ct.a"
    assert library.is_file(), f"{library} was not built"
    cc = os.environ.get("CC", "cc").split()
    warnings = ["-Wall", "-Wextra", "-Wpedantic", "-Werror"]
    c_object = tmp_path / "c_layout.o"
    _check(
        _run([*cc, "-std=c11", *warnings, f"-I{CSRC}", "-c", TESTS_C / "c_layout.c", "-o", c_object]),
        "compiling tests/c/c_layout.c as C11",
    )
    exe = tmp_path / "cxx_header"
    _check(
        _run([gxx, "-std=c++17", *warnings, f"-I{CSRC}", TESTS_C / "cxx_header.cpp", c_object, library, "-o", exe]),
        "compiling tests/c/cxx_header.cpp with g++ -std=c++17",
    )
    passed, _ = _assert_summary_clean(_run([exe]), "tests/c/cxx_header.cpp")
    assert passed >= 3


# ---- one build recipe ------------------------------------------------------------------------


def _recipe(name: str) -> list[str]:
    """csrc/<name>.txt: one item a line, blank lines and '#' comments skipped."""
    lines = (CSRC / f"{name}.txt").read_text().splitlines()
    return [item for item in (line.strip() for line in lines) if item and not item.startswith("#")]


def _library_commands(commands: dict[str, list[str]], what: str) -> None:
    """Every library source compiled once, each with the whole of csrc/cflags.txt, in file order."""
    sources = {f"csrc/{name}" for name in _recipe("sources")}
    flags = _recipe("cflags")
    assert set(commands) == sources, f"{what} compiles {sorted(commands)}; csrc/sources.txt lists {sorted(sources)}"
    for source, args in commands.items():
        starts = [i for i in range(len(args)) if args[i : i + len(flags)] == flags]
        assert starts, f"{what}: {source} is not compiled with csrc/cflags.txt {flags}:\n{shlex.join(args)}"


def test_meson_and_setup_py_compile_the_same_sources_with_the_same_flags(
    meson_builds: dict[str, MesonBuild], tmp_path: Path
) -> None:
    """Both builds take the library's sources and flags from csrc/sources.txt and csrc/cflags.txt,
    proven on the compiler commands each one really runs; neither file names a source or a flag."""
    sources, flags = _recipe("sources"), _recipe("cflags")
    assert len(sources) >= 4 and all(name.endswith(".c") for name in sources), sources
    assert {"-std=c11", "-Werror", "-fvisibility=hidden", "-DMEMIF_CT_BUILDING"} <= set(flags), flags
    assert not any(flag.startswith("-O") for flag in flags), "the -O level is each build system's own"
    for build_file in ("setup.py", "meson.build"):
        strings = re.findall(r"""["']([^"'\n]*)["']""", (ROOT / build_file).read_text())
        named = [s for s in strings for item in sources + flags if s == item or s.endswith("/" + item)]
        assert not named, f"{build_file} names {named} itself instead of reading csrc/sources.txt and cflags.txt"

    build = meson_builds["plain"]
    meson_commands: dict[str, list[str]] = {}
    for entry in json.loads((build.dir / "compile_commands.json").read_text()):
        if entry["output"].startswith("libmemif_ct."):
            source = Path(entry["directory"], entry["file"]).resolve().relative_to(ROOT).as_posix()
            meson_commands[source] = shlex.split(entry["command"])
    _library_commands(meson_commands, "meson")

    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(CSRC, tmp_path / "csrc")
    shutil.copytree(ROOT / "memif_ct", tmp_path / "memif_ct", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    proc = _run(
        [sys.executable, "setup.py", "build_ext", "--build-temp", tmp_path / "obj", "--build-lib", tmp_path / "lib"],
        cwd=tmp_path,
    )
    output = _check(proc, "setup.py build_ext") + proc.stderr
    setup_commands: dict[str, list[str]] = {}
    for line in output.splitlines():
        args = shlex.split(line) if " -c csrc/" in line else []
        if args:
            setup_commands[args[args.index("-c") + 1]] = args
    _library_commands(setup_commands, "setup.py")
    assert all("-O3" in args for args in setup_commands.values()), "setup.py builds the library at -O3"
