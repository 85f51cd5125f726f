"""Check a repaired memif-ct wheel: its tag, and the glibc it needs (issue 11).

    python .ci/check_wheel.py WHEEL

* The tag is ``py3-none-manylinux_X_Y_<arch>`` (or musllinux): the library has no Python C-API,
  so the wheel is not tied to one CPython.
* The glibc floor: the highest GLIBC_x.y version among the library's imported symbols, counting
  the pthread functions glibc 2.32/2.34 moved from libpthread into libc as 2.17 (a build in a
  manylinux image, whose glibc is older, binds their old versions; this host's build cannot).
  It must equal ``EXPECTED_FLOOR``: a new symbol that raises it fails here, with its name.
* auditwheel's platform tag agrees with the symbols actually imported on this build.

Needs pyelftools (an auditwheel dependency).
"""

from __future__ import annotations

import re
import sys
import tempfile
import zipfile
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection

# Every symbol is <= 2.17 (preadv2, a 2.26 symbol, is called as a raw system call in
# csrc/interrupt.c for that reason).
EXPECTED_FLOOR = (2, 17)
BASELINE = (2, 17)  # manylinux2014
MOVED_INTO_LIBC = frozenset({
    "pthread_key_create", "pthread_key_delete", "pthread_once", "pthread_getspecific",
    "pthread_setspecific", "pthread_sigmask", "pthread_kill", "pthread_self",
})
LIBRARY = "memif_ct/libmemif_ct.so"
TAG = re.compile(r"^memif_ct-[^-]+-py3-none-(?P<plat>(many|musl)linux_(?P<major>\d+)_(?P<minor>\d+)_\w+?)"
                 r"(\.(many|musl)linux_\d+_\d+_\w+)*\.whl$")


def glibc_symbols(path: Path) -> dict[str, tuple[int, int]]:
    """Imported symbol -> the GLIBC_x.y version it is bound to."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        names: dict[int, str] = {}
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _needed, aux in section.iter_versions():
                    for entry in aux:
                        names[entry["vna_other"]] = entry.name
        versym = next(s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection))
        dynsym = elf.get_section_by_name(".dynsym")
        out: dict[str, tuple[int, int]] = {}
        for i, sym in enumerate(dynsym.iter_symbols()):
            if sym["st_shndx"] != "SHN_UNDEF" or not sym.name:
                continue
            version = names.get(versym.get_symbol(i)["ndx"]) if isinstance(versym.get_symbol(i)["ndx"], int) else None
            m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", version or "")
            if m:
                out[sym.name] = (int(m[1]), int(m[2]))
        return out


def main(wheel_path: str) -> int:
    wheel = Path(wheel_path)
    problems = []
    m = TAG.match(wheel.name)
    if not m:
        print(f"check_wheel: {wheel.name}: expected memif_ct-VERSION-py3-none-manylinux_X_Y_ARCH.whl", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        if LIBRARY not in zf.namelist():
            print(f"check_wheel: {wheel.name} has no {LIBRARY}", file=sys.stderr)
            return 1
        lib = Path(zf.extract(LIBRARY, tmp))
        symbols = glibc_symbols(lib)
    if m["plat"].startswith("musllinux"):
        print(f"check_wheel: {wheel.name}: musllinux, no glibc floor to check")
        return 0
    above = {s: v for s, v in sorted(symbols.items()) if v > BASELINE}
    floor = max([BASELINE, *(v for s, v in symbols.items() if s not in MOVED_INTO_LIBC)])
    as_built = max([BASELINE, *symbols.values()])
    tag = (int(m["major"]), int(m["minor"]))
    print(f"check_wheel: {wheel.name}")
    print("  glibc symbols above 2.17: " + (", ".join(f"{s}@{a}.{b}" for s, (a, b) in above.items()) or "none"))
    print(f"  floor in a manylinux image: {floor[0]}.{floor[1]}; as built here: {as_built[0]}.{as_built[1]}; "
          f"tag says {tag[0]}.{tag[1]}")
    if floor != EXPECTED_FLOOR:
        problems.append(f"glibc floor is {floor[0]}.{floor[1]}, expected {EXPECTED_FLOOR[0]}.{EXPECTED_FLOOR[1]} "
                        "(update EXPECTED_FLOOR in .ci/check_wheel.py if that is intended)")
    if tag < as_built:
        problems.append(f"the tag claims glibc {tag[0]}.{tag[1]} but the library needs {as_built[0]}.{as_built[1]}")
    for p in problems:
        print(f"check_wheel: FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python .ci/check_wheel.py WHEEL")
    sys.exit(main(sys.argv[1]))
