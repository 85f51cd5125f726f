"""Build step: compile csrc/ into a plain C shared library shipped inside the package.

The library has no Python C-API in it; memif_ct/_native.py loads it with ctypes. We borrow
setuptools' build_ext only for its compiler plumbing, in-place (editable) builds and platform
wheel tagging.

The source list and the compiler flags live in csrc/sources.txt and csrc/cflags.txt, which
meson.build reads too, so both builds compile the same files the same way.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LIB_NAME = "libmemif_ct.so"
CSRC = "csrc"  # relative: setuptools wants source paths relative to the project directory
OPTIMIZATION = "-O3"  # the one flag kept here: meson derives its -O level from buildtype


def read_list(name: str) -> list[str]:
    """Items of csrc/<name>.txt, one a line, skipping blank lines and '#' comments (as meson.build does)."""
    lines = (Path(__file__).resolve().parent / CSRC / f"{name}.txt").read_text().splitlines()
    return [item for item in (line.strip() for line in lines) if item and not item.startswith("#")]


def library_sources() -> list[str]:
    """The C sources of the library, from csrc/sources.txt."""
    return [f"{CSRC}/{name}" for name in read_list("sources")]


def compile_flags(cacheline: str | None) -> list[str]:
    """csrc/cflags.txt, the -O level, the cache-line override if any, and the build description."""
    flags = [*read_list("cflags"), OPTIMIZATION]
    if cacheline:
        flags.append(f"-DMEMIF_CT_CACHELINE_SIZE={int(cacheline)}")
    flags.append('-DMEMIF_CT_BUILD_INFO="' + " ".join(flags).replace('"', "") + '"')
    return flags


class BuildNativeLibrary(build_ext):
    """Compile csrc/*.c to memif_ct/libmemif_ct.so with the system C compiler."""

    def get_ext_filename(self, fullname: str) -> str:
        package, _, _ = fullname.rpartition(".")
        return os.path.join(*package.split("."), LIB_NAME)

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # no PyInit_*: this is not a Python extension module

    def build_extension(self, ext: Extension) -> None:
        self._check_compiler()
        ext.extra_compile_args = compile_flags(os.environ.get("MEMIF_CT_CACHELINE_SIZE"))
        try:
            super().build_extension(ext)
        except Exception as exc:  # CompileError, LinkError, DistutilsExecError
            raise SystemExit(
                f"memif-ct: compiling its C data-path library failed: {exc}\n"
                "memif-ct needs a working C11 compiler (gcc or clang). On Debian/Ubuntu: "
                "apt-get install build-essential"
            ) from exc

    def _check_compiler(self) -> None:
        compiler = getattr(self.compiler, "compiler_so", None) or ["cc"]
        exe = os.environ.get("CC", "").split()[:1] or compiler[:1]
        if exe and shutil.which(exe[0]) is None:
            raise SystemExit(
                f"memif-ct: no C compiler found (looked for {exe[0]!r}). memif-ct compiles a small C "
                "library at install time; install gcc or clang (Debian/Ubuntu: "
                "apt-get install build-essential) or set CC."
            )


def platform_wheel_command() -> dict[str, type]:
    """A bdist_wheel that tags the wheel py3-none-<platform>: the library is plain C loaded with
    ctypes, with no Python C-API in it, so one wheel per platform serves every CPython the
    package supports (setuptools would tag it for the building interpreter, e.g. cp311-cp311).

    Empty where no bdist_wheel exists (an old setuptools without the wheel package): such an
    environment cannot build wheels anyway, and build_ext must still run there."""
    try:  # setuptools >= 70.1 has its own; before that it is the wheel package's
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:
        try:
            from wheel.bdist_wheel import bdist_wheel  # type: ignore[no-redef]
        except ImportError:
            return {}

    class PlatformWheel(bdist_wheel):  # type: ignore[misc,valid-type]
        def get_tag(self) -> tuple[str, str, str]:
            _python, _abi, platform = super().get_tag()
            return "py3", "none", platform

    return {"bdist_wheel": PlatformWheel}


if not sys.platform.startswith("linux"):
    raise SystemExit("memif-ct needs Linux: memif uses memfd, eventfd and SOCK_SEQPACKET sockets")

setup(
    ext_modules=[
        Extension(
            "memif_ct.libmemif_ct",
            sources=library_sources(),
            include_dirs=[CSRC],
            depends=[f"{CSRC}/memif_ct.h", f"{CSRC}/sources.txt", f"{CSRC}/cflags.txt"],
            extra_link_args=["-pthread"],  # guard.c: before glibc 2.34, pthread_* live in libpthread
        )
    ],
    cmdclass={"build_ext": BuildNativeLibrary, **platform_wheel_command()},
)
