"""How the C library is found, checked and built, that C and Python agree on constants, error
codes and statistics fields, and the contract of the FFI layer (_native) the queues build on."""

from __future__ import annotations

import ast
import array
import ctypes
import errno
import mmap
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import memif_ct
from memif_ct import _native, constants, errors

from hostcpu import has_rep_movsb

REPO = Path(__file__).resolve().parent.parent
HEADER = REPO / "csrc" / "memif_ct.h"


def test_every_c_constant_has_an_equal_python_twin():
    table = _native.c_constants()
    assert len(table) >= 30
    assert table["MAX_REGION_SIZE"] == 1 << 40
    for name, value in table.items():
        assert hasattr(constants, name), f"constants.{name} is missing (C has {value:#x})"
        assert getattr(constants, name) == value, f"{name}: C {value:#x} != Python {getattr(constants, name):#x}"


def test_error_codes_equal_the_header_and_each_has_its_own_text():
    declared = dict(re.findall(r"MEMIF_CT_ERR_(\w+) = (-\d+)", HEADER.read_text()))
    assert len(declared) == 10, declared  # ABI 5 added ERR_RANGE and ERR_STATE
    for name, value in declared.items():
        assert getattr(_native, f"ERR_{name}") == int(value), f"_native.ERR_{name} != header's {value}"
    texts = [_native.strerror(int(v)) for v in declared.values()]
    unknown = _native.strerror(12345)
    assert unknown not in texts and len(set(texts)) == len(texts), texts


def test_stats_fields_are_the_c_struct_fields():
    struct = re.search(r"typedef struct \{([^{}]*)\} memif_ct_stats_t;", HEADER.read_text())
    assert struct, "memif_ct_stats_t not found in the header"
    assert _native.STATS_FIELDS == tuple(re.findall(r"uint64_t (\w+);", struct.group(1)))


def test_check_raises_a_typed_error_carrying_the_c_code():
    assert _native.check(0, "memif_ct_refill") == 0
    assert _native.check(5, "memif_ct_refill") == 5
    with pytest.raises(errors.NativeArgumentError) as info:
        _native.check(_native.ERR_DIRECTION, "memif_ct_refill")
    err = info.value
    assert (err.code, err.function, err.reason) == (
        _native.ERR_DIRECTION, "memif_ct_refill", _native.strerror(_native.ERR_DIRECTION)
    )
    assert isinstance(err, ValueError) and "memif_ct_refill" in str(err)


def test_every_raise_in_native_is_a_memif_error():
    tree = ast.parse((REPO / "memif_ct" / "_native.py").read_text())
    raises = [node.exc for node in ast.walk(tree) if isinstance(node, ast.Raise) and node.exc is not None]
    assert len(raises) >= 10
    for exc in raises:
        assert isinstance(exc, ast.Call) and isinstance(exc.func, ast.Name), ast.unparse(exc)
        name = exc.func.id
        if not hasattr(errors, name):  # a helper that builds the error: judge it by what it returns
            name = getattr(_native, name).__annotations__["return"]
        assert issubclass(getattr(errors, name), errors.MemifError), f"_native.py raises {ast.unparse(exc)}"


def test_argument_checks_raise_memif_errors():
    with pytest.raises(errors.ArgumentTypeError, match="log2_ring_size must be an int"):
        _native.ring_bytes("3")  # type: ignore[arg-type]
    with pytest.raises(errors.ArgumentError, match="log2_ring_size=15 is out of range"):
        _native.ring_bytes(15)
    with pytest.raises(errors.ArgumentError, match="buffer_size=63"):
        _native.Layout.compute(1, 1, 10, 63)
    with pytest.raises(errors.SocketError) as info:
        _native.eventfd_signal(-1)
    assert info.value.errno == errno.EBADF and isinstance(info.value, OSError)
    with pytest.raises(errors.SocketError):
        _native.eventfd_clear(-1)


# ---- CQueue over a real mapping ------------------------------------------------------------------


class _Region:
    """One anonymous mapping laid out for one S2M and one M2S ring, as a client builds it."""

    def __init__(self, log2_ring_size: int = 3, buffer_size: int = 128) -> None:
        self.layout = _native.Layout.compute(1, 1, log2_ring_size, buffer_size)
        self.map = mmap.mmap(-1, self.layout.total_size)
        self.pin = _native.Pinned(self.map)
        self.table = _native.RegionTable(1)
        self.table.set(0, self.pin.address, self.pin.size)

    def ring(self, ring_type: int) -> tuple[int, int]:
        """(address, buffer offset) of ring 0 of ring_type, freshly initialised."""
        address = self.pin.address + self.layout.ring_offset(ring_type, 0)
        buffer_offset = self.layout.buffer_offset(ring_type, 0)
        _native.ring_init(address, self.layout.log2_ring_size, 0, buffer_offset, self.layout.buffer_size)
        return address, buffer_offset

    def close(self) -> None:
        self.pin.release()
        self.map.close()


@pytest.fixture
def region():
    r = _Region()
    yield r
    r.close()


def test_cqueue_refusals_carry_the_c_code(region):
    address, _ = region.ring(constants.RING_TYPE_S2M)
    log2 = region.layout.log2_ring_size
    server = {"role": constants.ROLE_SERVER, "ring_type": constants.RING_TYPE_S2M, "regions": region.table}
    cases = {
        _native.ERR_ALIGN: address + 2 * region.layout.ring_bytes + 1,  # inside the region, misaligned
        _native.ERR_COOKIE: address + 2 * region.layout.ring_bytes,  # buffer bytes, no ring header
        _native.ERR_LAYOUT: address + region.layout.total_size,  # past the region
        _native.ERR_NULL: 0,
    }
    for code, ring_address in cases.items():
        with pytest.raises(errors.NativeArgumentError) as info:
            _native.CQueue(ring_address, log2, **server)
        assert (info.value.code, info.value.function) == (code, "memif_ct_queue_init"), str(info.value)
    with pytest.raises(errors.ArgumentTypeError, match="regions must be a RegionTable"):
        _native.CQueue(address, log2, role=constants.ROLE_SERVER, ring_type=constants.RING_TYPE_S2M, regions=None)  # type: ignore[arg-type]


def test_cqueue_burst_signals_the_eventfd_in_one_call(region):
    address, buffer_offset = region.ring(constants.RING_TYPE_S2M)
    log2, bsize = region.layout.log2_ring_size, region.layout.buffer_size
    tx = _native.CQueue(address, log2, role=constants.ROLE_CLIENT, ring_type=constants.RING_TYPE_S2M,
                        regions=region.table, buffer_region=0, buffer_offset=buffer_offset, buffer_size=bsize)
    rx = _native.CQueue(address, log2, role=constants.ROLE_SERVER, ring_type=constants.RING_TYPE_S2M,
                        regions=region.table)
    assert (tx.is_tx, rx.is_tx, tx.ring_size, tx.role, tx.ring_type) == (
        True, False, 8, constants.ROLE_CLIENT, constants.RING_TYPE_S2M
    )
    assert tx.address and tx.address != rx.address
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        tx.set_eventfd(efd)
        data = b"first" + b"second packet"
        lengths = (ctypes.c_uint32 * 2)(5, 13)
        assert tx.needs_signal() and tx.free() == 8
        assert _native.tx_burst_raw(tx.arg, data, ctypes.c_size_t(len(data)), lengths, 2) == 2
        assert _native.eventfd_clear(efd) == 1  # once per burst, not per packet
        assert rx.pending() == 2
        out = bytearray(64)
        out_lengths = (ctypes.c_uint32 * 4)()
        with _native.Pinned(out) as pin:
            n = _native.rx_burst_raw(rx.arg, ctypes.c_void_p(pin.address), ctypes.c_size_t(pin.size), out_lengths, 4)
        assert n == 2 and list(out_lengths[:2]) == [5, 13] and bytes(out[:18]) == data
        assert _native.eventfd_clear_raw(efd) == 0  # RX never signals
        rx.set_polling(True)  # MASK_INT: the receiver polls, so no signal
        assert not tx.needs_signal()
        assert _native.tx_burst_raw(tx.arg, data, ctypes.c_size_t(len(data)), lengths, 2) == 2
        assert _native.eventfd_clear(efd) == 0
        tx.set_eventfd(-1)
        rx.set_polling(False)
        assert _native.tx_burst_raw(tx.arg, data, ctypes.c_size_t(len(data)), lengths, 2) == 2
        assert _native.eventfd_clear(efd) == 0
        _native.eventfd_signal(efd)
        assert _native.eventfd_signal_raw(efd) == 0 and _native.eventfd_clear(efd) == 2
    finally:
        os.close(efd)
    stats = tx.stats()
    assert tuple(stats) == _native.STATS_FIELDS
    assert (stats["packets"], stats["bytes"]) == (6, 54)
    tx.stats_reset()
    assert set(tx.stats().values()) == {0}
    with pytest.raises(errors.NativeArgumentError) as info:
        _native.check(_native.tx_burst_raw(rx.arg, data, ctypes.c_size_t(len(data)), lengths, 2),
                      "memif_ct_tx_burst")
    assert info.value.code == _native.ERR_DIRECTION
    with pytest.raises(errors.NativeArgumentError) as info:
        tx.refill()
    assert info.value.code == _native.ERR_DIRECTION
    with pytest.raises(errors.ArgumentError, match="fd=-2"):
        tx.set_eventfd(-2)


_KIND_OF_C_TYPE = {"uint32_t": "u32", "int": "int", "size_t": "size_t", "uint64_t": "u64"}
_CTYPE_OF_C_RESULT = {"int": ctypes.c_int, "int64_t": ctypes.c_int64}


def _header_prototype(name: str) -> tuple[str, list[str]]:
    found = re.search(r"MEMIF_CT_API\s+([\w ]+?)\s+" + name + r"\s*\(([^)]*)\)\s*;", HEADER.read_text())
    assert found, name
    return found.group(1).strip(), [" ".join(p.split()) for p in found.group(2).split(",")]


def test_bare_functions_take_the_kinds_their_c_prototypes_declare():
    """Each burst-path function bound without argtypes takes, parameter for parameter, what its
    prototype in memif_ct.h declares: a pointer is never an int, bytes only where C promises
    const, a size_t a c_size_t; and its result is read as the C type it is."""
    assert len(_native.BARE_PARAMETERS) >= 15
    for name, kinds in _native.BARE_PARAMETERS.items():
        result, params = _header_prototype(name)
        expected = tuple(("pointer" if p.startswith("const ") else "out") if "*" in p
                         else _KIND_OF_C_TYPE[p.rsplit(" ", 1)[0]] for p in params)
        assert kinds == expected, name
        assert _native.BARE_RESTYPES[name] is _CTYPE_OF_C_RESULT[result], name


def test_the_test_run_checks_every_bare_call_and_the_check_refuses_an_int_address(region):
    assert _native.CHECK_CALLS  # conftest: the whole suite runs the checked calls
    address, _ = region.ring(constants.RING_TYPE_S2M)
    tx = _native.CQueue(address, region.layout.log2_ring_size, role=constants.ROLE_CLIENT,
                        ring_type=constants.RING_TYPE_S2M, regions=region.table, buffer_size=region.layout.buffer_size)
    lengths = (ctypes.c_uint32 * 1)(4)
    size = ctypes.c_size_t(4)
    with pytest.raises(errors.ArgumentTypeError, match=r"tx_burst argument 0: its out parameter takes no int"):
        _native.tx_burst_raw(tx.address, b"abcd", size, lengths, 1)
    with pytest.raises(errors.ArgumentTypeError, match=r"argument 2: its size_t parameter takes no int"):
        _native.tx_burst_raw(tx.arg, b"abcd", 4, lengths, 1)
    with pytest.raises(errors.ArgumentTypeError, match=r"argument 4: its u32 parameter takes no int -1"):
        _native.tx_burst_raw(tx.arg, b"abcd", size, lengths, -1)
    with pytest.raises(errors.ArgumentTypeError, match=r"argument 1: its pointer parameter takes no c_char"):
        _native.tx_burst_raw(tx.arg, ctypes.c_char(b"a"), size, lengths, 1)  # a simple type passes its value
    with pytest.raises(errors.ArgumentTypeError, match=r"takes 5 arguments, not 4"):
        _native.tx_burst_raw(tx.arg, b"abcd", size, lengths)
    with pytest.raises(errors.ArgumentTypeError, match=r"argument 1: its pointer parameter takes no CArgObject"):
        _native.tx_burst_raw(tx.arg, ctypes.c_int.from_param(5), size, lengths, 1)  # a value, not byref()
    out = bytes(64)
    with pytest.raises(errors.ArgumentTypeError, match=r"rx_burst argument 1: its out parameter takes no bytes"):
        _native.rx_burst_raw(tx.arg, out, ctypes.c_size_t(64), lengths, 1)  # C would write into it
    assert tx.stats()["packets"] == 0  # none of them reached C
    assert _native.tx_burst_raw(tx.arg, b"abcd", size, ctypes.byref(lengths), True) == 1  # an int subclass


def test_unchecked_bare_calls_move_traffic(tmp_path):
    """What users run: the bare functions without the check, on the paths the loopback tool
    takes (stamp and send in C, peek and check in place, receive into a buffer and send it
    packed), each frame verified. The other bare calls differ from these only by the check."""
    env = dict(os.environ, MEMIF_CT_CHECK_CALLS="0")
    code = ("from memif_ct import _native; assert not _native.CHECK_CALLS; "
            "from memif_ct.cli import main; raise SystemExit(main(['loopback', '--count', '20000', '--json']))")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert '"verified": 20000' in r.stdout and '"lost": 0' in r.stdout and '"corrupted": 0' in r.stdout, r.stdout


def test_client_m2s_refill(region):
    address, buffer_offset = region.ring(constants.RING_TYPE_M2S)
    q = _native.CQueue(address, region.layout.log2_ring_size, role=constants.ROLE_CLIENT,
                       ring_type=constants.RING_TYPE_M2S, regions=region.table, buffer_offset=buffer_offset,
                       buffer_size=region.layout.buffer_size)
    assert not q.is_tx
    assert q.refill() == 8 and q.refill() == 0


# ---- pinning -------------------------------------------------------------------------------------


def test_pinned_holds_an_mmap_open_until_released():
    m = mmap.mmap(-1, 4096)
    with _native.Pinned(m) as pin:
        assert pin.size == 4096 and pin.address and not pin.readonly
        ctypes.memmove(pin.address, b"xyz", 3)
        with pytest.raises(BufferError):
            m.close()
    assert pin.address == 0
    assert m[:3] == b"xyz"
    m.close()


def test_pinned_gives_the_buffers_own_address_and_whole_size_and_blocks_resizing():
    data = bytearray(b"0123456789")
    with _native.Pinned(data) as pin:
        assert pin.size == 10 and ctypes.string_at(pin.address, 10) == b"0123456789"
        assert pin.address == ctypes.addressof(ctypes.c_char.from_buffer(data))  # no copy
        with pytest.raises(BufferError):
            data.extend(b"x")  # the C code may hold the address: no reallocation
    data.extend(b"x")  # released: resizable again
    lengths = array.array("I", [1, 2, 3])
    with _native.Pinned(lengths) as pin:
        assert pin.size == 12  # bytes, not items
    with _native.Pinned(bytearray()) as pin:
        assert pin.size == 0


@pytest.mark.parametrize("make", [lambda: bytearray(b"0123456789ab"), lambda: array.array("I", [1, 2, 3]),
                                  lambda: b"0123456789ab", lambda: bytearray(),
                                  lambda: memoryview(bytearray(b"0123456789ab"))[2:],
                                  lambda: memoryview(array.array("I", [1, 2, 3]))])
def test_pin_fast_path_gives_the_address_and_blocks_resizing_until_unpinned(make):
    obj = make()
    anchor, address, size = _native.pin(obj, writable=False)
    assert size == len(obj) * getattr(obj, "itemsize", 1)
    if size:
        assert ctypes.string_at(address, size) == bytes(obj)  # its own bytes, no copy made
    owner = obj.obj if isinstance(obj, memoryview) else obj  # what holds the memory
    if isinstance(obj, memoryview):
        assert address == ctypes.addressof(ctypes.c_char.from_buffer(obj))  # where the view starts
        obj.release()  # the caller lets go of its view: the pin still holds the memory
    if isinstance(owner, (bytearray, array.array)):
        with pytest.raises(BufferError):
            owner.extend(owner[:1] or b"x")  # the C code may hold the address: no reallocation
    _native.unpin(anchor)
    del anchor  # (a ctypes export goes with its last reference, as at every call site)
    if isinstance(owner, (bytearray, array.array)):
        owner.extend(owner[:1] or b"x")  # released: resizable again


def test_pin_of_bytes_is_its_own_storage_for_reading_only():
    data = b"immutable payload"
    anchor, address, size = _native.pin(data, writable=False)
    assert anchor is data and size == len(data)  # immutable: nothing to hold but the object
    assert address == _native.pin_readonly(data).address  # the bytes' own storage, as Pinned finds it
    with pytest.raises(errors.ArgumentTypeError, match="writable"):
        _native.pin(data)  # C must never write into a bytes object
    anchor, address, size = _native.pin(b"", writable=False)  # empty: a Pinned, as for every kind
    assert isinstance(anchor, _native.Pinned) and size == 0
    _native.unpin(anchor)


def test_pinned_refuses_read_only_and_strided_buffers():
    with pytest.raises(errors.ArgumentTypeError, match="writable"):
        _native.Pinned(b"data")
    with pytest.raises(errors.ArgumentTypeError, match="C-contiguous"):
        _native.Pinned(memoryview(bytearray(8))[::2])
    with pytest.raises(errors.ArgumentTypeError, match="buffer protocol"):
        _native.pin_readonly(42)


def test_pin_readonly_is_zero_copy_and_holds_the_export():
    data = b"read-only payload"
    pin = _native.pin_readonly(data)
    assert pin.readonly and pin.size == len(data)
    assert pin.address == ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value  # the bytes' own storage
    pin.release()
    pin.release()  # idempotent
    backing = bytearray(b"abcdef")
    view = memoryview(backing).toreadonly()
    pin = _native.pin_readonly(view)
    assert ctypes.string_at(pin.address, pin.size) == b"abcdef"
    backing[0:1] = b"A"  # same memory: no copy was made
    assert ctypes.string_at(pin.address, 1) == b"A"
    with pytest.raises(BufferError):
        view.release()  # still exported to C
    pin.release()
    view.release()
    assert _native.pin_readonly(bytearray(b"w")).readonly is False  # a writable buffer pins as such


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


def test_copy_method_defaults_to_movsb_where_the_cpu_has_erms_and_switches():
    before = _native.copy_method()
    movsb = has_rep_movsb()
    assert before == ("movsb" if movsb else "memcpy")  # a build without ASan, as installed
    assert memif_ct.library_info()["copy_method"] == before
    assert memif_ct.copy_method is _native.copy_method  # public as memif_ct.copy_method
    try:
        assert _native.copy_method("memcpy") == "memcpy"
        assert _native.copy_method() == "memcpy"
        if movsb:
            assert _native.copy_method("movsb") == "movsb"
            assert _native.copy_method() == "movsb"
        else:
            with pytest.raises(errors.ArgumentError, match="not available here"):
                _native.copy_method("movsb")
        with pytest.raises(errors.ArgumentError, match="is not one of memcpy, movsb"):
            _native.copy_method("avx")
        with pytest.raises(errors.ArgumentTypeError, match="must be a str"):
            _native.copy_method(1)  # type: ignore[arg-type]
    finally:
        _native.copy_method(before)
    assert _native.copy_method() == before
