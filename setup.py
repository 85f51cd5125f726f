"""Build step: compile csrc/ into a plain C shared library shipped inside the package.

The library has no Python C-API in it; memif_ct/_native.py loads it with ctypes. We borrow
setuptools' build_ext only for its compiler plumbing, in-place (editable) builds and platform
wheel tagging.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

LIB_NAME = "libmemif_ct.so"
CFLAGS = [
    "-std=c11",
    "-O3",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fvisibility=hidden",
    "-DMEMIF_CT_BUILDING",
]


class BuildNativeLibrary(build_ext):
    """Compile csrc/*.c to memif_ct/libmemif_ct.so with the system C compiler."""

    def get_ext_filename(self, fullname: str) -> str:
        package, _, _ = fullname.rpartition(".")
        return os.path.join(*package.split("."), LIB_NAME)

    def get_export_symbols(self, ext: Extension) -> list[str]:
        return []  # no PyInit_*: this is not a Python extension module

    def build_extension(self, ext: Extension) -> None:
        self._check_compiler()
        flags = list(CFLAGS)
        cacheline = os.environ.get("MEMIF_CT_CACHELINE_SIZE")
        if cacheline:
            flags.append(f"-DMEMIF_CT_CACHELINE_SIZE={int(cacheline)}")
        flags.append('-DMEMIF_CT_BUILD_INFO="' + " ".join(flags).replace('"', "") + '"')
        ext.extra_compile_args = flags
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


if not sys.platform.startswith("linux"):
    raise SystemExit("memif-ct needs Linux: memif uses memfd, eventfd and SOCK_SEQPACKET sockets")

setup(
    ext_modules=[
        Extension(
            "memif_ct.libmemif_ct",
            sources=sorted(glob.glob("csrc/*.c")),
            include_dirs=["csrc"],
            depends=["csrc/memif_ct.h"],
        )
    ],
    cmdclass={"build_ext": BuildNativeLibrary},
)
