"""Interface configuration: one frozen dataclass, built from keywords or from DPDK devargs.

A user who already drives DPDK writes ``net_memif0,role=server,socket=/run/x.sock`` and must get
the interface DPDK would have built from the same string, so :meth:`InterfaceConfig.from_devargs`
applies DPDK's defaults (``drivers/net/memif/rte_eth_memif.c``, ``rte_pmd_memif_probe``):

* ``role`` defaults to **client** (``enum memif_role_t role = MEMIF_ROLE_CLIENT``; ``master`` and
  ``slave`` are still accepted as deprecated spellings of server and client);
* ``socket`` defaults to ``/run/memif.sock`` (``ETH_MEMIF_DEFAULT_SOCKET_FILENAME``) and
  ``socket-abstract`` to **yes** ("use abstract address by default"), so the default DPDK socket
  is the *abstract* name ``/run/memif.sock`` (memif-protocol.md section 6);
* ``mac`` defaults to a random locally administered unicast address (``rte_eth_random_addr``);
* ``zero-copy=yes`` on a server is silently dropped (``memif_create``: "Zero-copy flag irrelevant
  to server"): the client owns and lays out the shared memory, a server only maps it.

The keyword form (:meth:`InterfaceConfig.from_kwargs`) follows libmemif instead: the socket is a
filesystem path unless it starts with ``@`` (section 1), default ``$XDG_RUNTIME_DIR/memif.sock``
(``/run/memif.sock`` for root, else ``/run/user/UID/memif.sock``): never a world-writable directory.

We are stricter than DPDK, whose parsers use ``strtoul``/``strstr`` and silently accept garbage
(``id=abc`` is id 0, ``zero-copy=nope`` is "no"): every bad key or value raises ConfigError
naming the key, the value and what is allowed. Keys DPDK does not have (``rx-queues``, ``mode``,
``interrupt``, ``reconnect`` ...) are ours; :meth:`InterfaceConfig.to_devargs` can leave them out.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from memif_ct import constants
from memif_ct.errors import ArgumentError, ConfigError
from memif_ct.macaddr import MAC_SIZE, mac_to_str, random_local_mac, str_to_mac

__all__ = ["DEFAULT_NAME", "DPDK_DEFAULT_SOCKET", "InterfaceConfig", "Role"]

_log = logging.getLogger(__name__)

Role = Literal["client", "server"]

DPDK_DEFAULT_SOCKET: Final = "/run/memif.sock"  # rte_eth_memif.h, abstract by default
DEFAULT_NAME: Final = "memif-ct"
SOCKET_PATH_MAX: Final = 107  # sockaddr_un.sun_path is 108 bytes; a path needs its NUL
SOCKET_ABSTRACT_MAX: Final = 107  # 108 minus the leading NUL; no trailing NUL (section 1)
VDEV_PREFIX: Final = "net_memif"  # DPDK's vdev names for this driver: net_memif0, net_memif_a, ...
SECRET_MAX: Final = constants.SECRET_SIZE - 1
NAME_MAX: Final = constants.NAME_SIZE - 1

_ROLES: Final[dict[str, Role]] = {
    "client": "client",
    "server": "server",
    "slave": "client",
    "master": "server",
}
_MODES: Final = {
    "ethernet": constants.MODE_ETHERNET,
    "ip": constants.MODE_IP,
    "punt-inject": constants.MODE_PUNT_INJECT,
}
_MODE_NAMES: Final = {v: k for k, v in _MODES.items()}


def mode_name(mode: int) -> str:
    """The devargs name of an interface mode (constants.MODE_*): ethernet, ip, punt-inject."""
    return _MODE_NAMES.get(mode, str(mode))
_TRUE: Final = frozenset({"yes", "true", "on", "1"})
_FALSE: Final = frozenset({"no", "false", "off", "0"})


def _show(value: object) -> str:
    """A value as the user typed it: devargs text verbatim, anything else as its repr."""
    if isinstance(value, str):
        return value if value and value.strip() == value else repr(value)
    if isinstance(value, bytes) and len(value) == MAC_SIZE:
        return mac_to_str(value)
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"  # repr() refuses ints past 4300 digits
    return repr(value)


def _fail(key: str, value: object, problem: str, expected: str) -> ConfigError:
    return ConfigError(f"{key}={_show(value)} {problem}: {expected}", key=key, value=value)


# --- one coercer per kind of value: (spelt key, raw value) -> typed, checked value ----------

_Coerce = Callable[[str, object], Any]


def _int_range(lo: int, hi: int, what: str) -> _Coerce:
    expected = f"{what} must be {lo}..{hi}"

    def coerce(key: str, raw: object) -> int:
        if isinstance(raw, str):
            text = raw.strip()
            if not (text.isascii() and text.isdigit()):  # decimal only, like DPDK's strtoul(.., 10)
                raise _fail(key, raw, "is not a decimal integer", expected)
            if len(text.lstrip("0")) > len(str(hi)):  # also keeps int() clear of its digit limit
                raise _fail(key, raw, "is out of range", expected)
            value = int(text.lstrip("0") or "0")  # (leading zeros count towards int()'s digit limit)
        elif isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        else:
            raise _fail(key, raw, "is not an integer", expected)
        if not lo <= value <= hi:
            raise _fail(key, raw, "is out of range", expected)
        return value

    return coerce


def _float_range(lo: float, hi: float, what: str) -> _Coerce:
    expected = f"{what} must be {lo:g}..{hi:g} seconds"

    def coerce(key: str, raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise _fail(key, raw, "is not a number", expected)
        try:
            value = float(raw)
        except ValueError:
            raise _fail(key, raw, "is not a number", expected) from None
        except OverflowError:  # an int beyond any float
            raise _fail(key, raw, "is out of range", expected) from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise _fail(key, raw, "is out of range", expected)
        return value

    return coerce


def _bool(key: str, raw: object) -> bool:
    """yes/no as DPDK spells it; true/false/on/off/1/0 too, since users type them anyway."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise _fail(key, raw, "is not a boolean", "expected yes or no")


def _role(key: str, raw: object) -> Role:
    role = _ROLES.get(raw.strip().lower()) if isinstance(raw, str) else None
    if role is None:
        raise _fail(key, raw, "is not a role", "expected client or server")
    return role


def _mode(key: str, raw: object) -> int:
    if isinstance(raw, str):
        mode = _MODES.get(raw.strip().lower().replace("_", "-"))
    elif isinstance(raw, int) and not isinstance(raw, bool) and raw in _MODE_NAMES:
        mode = raw
    else:
        mode = None
    if mode is None:
        raise _fail(key, raw, "is not a mode", "expected ethernet, ip or punt-inject")
    return mode


def _mac(key: str, raw: object) -> bytes:
    expected = "expected a unicast MAC address like 02:00:00:00:00:01"
    if raw is None:
        return random_local_mac()  # what DPDK does without mac=
    if isinstance(raw, str):
        try:
            mac = str_to_mac(raw.strip())
        except ArgumentError:
            raise _fail(key, raw, "is not a MAC address", expected) from None
    elif isinstance(raw, (bytes, bytearray)) and len(raw) == MAC_SIZE:
        mac = bytes(raw)
    else:
        raise _fail(key, raw, "is not a MAC address", expected)
    if mac[0] & 0x01:
        raise _fail(key, raw, "is a multicast address", expected)
    if mac == bytes(MAC_SIZE):
        raise _fail(key, raw, "is the all-zero address", expected)
    return mac


def _secret(key: str, raw: object) -> str | None:
    """At most 23 printable ASCII characters: the 24-byte wire field needs its NUL (gomemif)."""
    expected = f"a secret is at most {SECRET_MAX} printable ASCII characters"
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ConfigError(f"{key} is a {type(raw).__name__}, not a string: {expected}", key=key, value=raw)
    # The message never echoes the secret itself: error messages end up in logs.
    if not all(" " <= c <= "~" for c in raw):
        raise ConfigError(
            f"{key} has a character that is not printable ASCII: {expected}", key=key, value=raw
        )
    if len(raw) > SECRET_MAX:
        raise ConfigError(f"{key} is {len(raw)} characters long: {expected}", key=key, value=raw)
    return raw


def _wire_name(what: str) -> _Coerce:
    expected = f"{what} must be 1..{NAME_MAX} bytes of UTF-8 without NUL"

    def coerce(key: str, raw: object) -> str:
        if not isinstance(raw, str) or not raw or "\0" in raw or not _is_utf8(raw):
            raise _fail(key, raw, "is not a valid name", expected)
        if len(raw.encode()) > NAME_MAX:
            raise _fail(key, raw, f"is {len(raw.encode())} bytes long", expected)
        return raw

    return coerce


def _is_utf8(text: str) -> bool:
    """False for text holding lone surrogates, which no wire field or socket name can carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_ID_MAX: Final = 0xFFFFFFFE  # uid_t/gid_t; (uid_t)-1 means "unchanged" to chown


def _file_mode(key: str, raw: object) -> int:
    """A permission mode like 0600 (octal, as chmod takes it)."""
    expected = "expected an octal file mode 0000..0777, e.g. 0600"
    if isinstance(raw, str):
        text = raw.strip().lower().removeprefix("0o")
        if not text or any(ch not in "01234567" for ch in text):
            raise _fail(key, raw, "is not an octal mode", expected)
        value = int(text, 8)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise _fail(key, raw, "is not a file mode", expected)
    if not 0 <= value <= 0o777:
        raise _fail(key, raw, "is out of range", expected)
    return value


def _optional_id(what: str) -> _Coerce:
    check = _int_range(0, _ID_MAX, what)

    def coerce(key: str, raw: object) -> int | None:
        return None if raw is None or raw == "" else int(check(key, raw))

    return coerce


def _uid_list(key: str, raw: object) -> tuple[int, ...] | None:
    """uids separated by ':' in devargs (a comma ends the value there), or a list of ints."""
    check = _int_range(0, _ID_MAX, "each uid")
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        items: list[object] = [part for part in raw.split(":")]
    elif isinstance(raw, (list, tuple, set, frozenset)):
        items = list(raw)
    else:
        raise _fail(key, raw, "is not a list of uids", "expected uids like 0:1000, or a list of ints")
    if not items:
        raise _fail(key, raw, "is empty", "expected at least one uid")
    return tuple(int(check(key, item)) for item in items)


def default_socket_path() -> str:
    """The keyword form's default socket: in the user's runtime directory, never in a
    world-writable one where anyone could squat it and collect clients' secrets (issue 8)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "memif.sock")
    uid = os.getuid()
    return "/run/memif.sock" if uid == 0 else f"/run/user/{uid}/memif.sock"


def _socket(key: str, raw: object) -> str:
    """Text only here; the length limit depends on socket_abstract, checked in __post_init__."""
    if not isinstance(raw, str) or raw in ("", "@") or "\0" in raw or not _is_utf8(raw):
        raise _fail(
            key, raw, "is not a socket", "expected a filesystem path, or @name for an abstract socket"
        )
    return raw


def resolve_socket(socket: object, abstract: object, key: str = "socket",
                   abstract_key: str = "abstract") -> tuple[str, bool]:
    """A control socket as (name, abstract): ``@name`` is abstract (libmemif's spelling), and the
    name must fit sun_path. ``abstract``: None (no), a bool, or yes/no as a str (a str is never
    taken for its truth: "no" would make an abstract socket, which no file mode protects).
    ConfigError names ``key`` or ``abstract_key`` and the limit otherwise."""
    name = _socket(key, socket)
    if type(abstract) is int and abstract in (0, 1):  # bool(abstract) used to take these
        abstract = bool(abstract)
    abstract = False if abstract is None else _bool(abstract_key, abstract)
    if name.startswith("@"):
        name, abstract = name[1:], True
    size = len(name.encode())
    if abstract and size > SOCKET_ABSTRACT_MAX:
        raise _fail(key, name, f"is {size} bytes long",
                    f"an abstract socket name is at most {SOCKET_ABSTRACT_MAX} bytes")
    if not abstract and size > SOCKET_PATH_MAX:
        raise _fail(key, name, f"is {size} bytes long",
                    f"a socket path is at most {SOCKET_PATH_MAX} bytes ({SOCKET_PATH_MAX + 1} with its NUL)")
    return name, abstract


def socket_address(name: str, abstract: bool) -> str | bytes:
    """What ``socket.bind``/``connect`` take: ``b"\\0" + name`` (no trailing NUL) or the path.

    Python sizes an abstract address by the bytes given, which yields the address length
    ``2 + 1 + len(name)`` that libmemif, VPP and DPDK use (memif-protocol.md section 1).
    """
    return b"\0" + name.encode() if abstract else name


def socket_display(name: str, abstract: bool) -> str:
    """``@name`` for an abstract socket, the path otherwise: for logs and messages."""
    return f"@{name}" if abstract else name


@dataclass(frozen=True)
class _Option:
    attr: str  # python field name
    key: str  # devargs spelling (a name starting with net_memif may instead be the leading token)
    coerce: _Coerce
    dpdk: bool = False  # DPDK net/memif knows this key


_OPTIONS: Final = (
    _Option("id", "id", _int_range(0, 0xFFFFFFFF, "interface id"), dpdk=True),
    _Option("role", "role", _role, dpdk=True),
    _Option(
        "buffer_size",
        "bsize",
        _int_range(constants.MIN_BUFFER_SIZE, constants.MAX_BUFFER_SIZE, "buffer size"),
        dpdk=True,
    ),
    _Option(
        "log2_ring_size",
        "rsize",
        _int_range(constants.MIN_LOG2_RING_SIZE, constants.MAX_LOG2_RING_SIZE, "log2 ring size"),
        dpdk=True,
    ),
    _Option("socket", "socket", _socket, dpdk=True),
    _Option("socket_abstract", "socket-abstract", _bool, dpdk=True),
    _Option("mac", "mac", _mac, dpdk=True),
    _Option("secret", "secret", _secret, dpdk=True),
    _Option("zero_copy", "zero-copy", _bool, dpdk=True),
    _Option("rx_queues", "rx-queues", _int_range(1, constants.MAX_RINGS_PER_DIRECTION, "queue count")),
    _Option("tx_queues", "tx-queues", _int_range(1, constants.MAX_RINGS_PER_DIRECTION, "queue count")),
    _Option("mode", "mode", _mode),
    _Option("interrupt", "interrupt", _bool),
    _Option("name", "name", _wire_name("an interface name")),
    _Option("app_name", "app-name", _wire_name("an application name")),
    _Option("reconnect", "reconnect", _bool),
    _Option("reconnect_interval_s", "reconnect-interval", _float_range(0.01, 3600.0, "reconnect interval")),
    _Option("handshake_timeout_s", "handshake-timeout", _float_range(0.1, 600.0, "handshake timeout")),
    _Option("max_map_bytes", "max-map-bytes",
            _int_range(1 << 20, constants.MAX_REGIONS * constants.MAX_REGION_SIZE, "bytes a server maps per client")),
    _Option("accept_unsealed_hugetlbfs", "accept-unsealed-hugetlbfs", _bool),
    _Option("socket_mode", "socket-mode", _file_mode),
    _Option("owner_uid", "owner-uid", _optional_id("owner uid"), dpdk=True),
    _Option("owner_gid", "owner-gid", _optional_id("owner gid"), dpdk=True),
    _Option("allowed_uids", "allowed-uids", _uid_list),
)
_BY_ATTR: Final = {o.attr: o for o in _OPTIONS}
_BY_KEY: Final = {o.key: o for o in _OPTIONS}
_KWARG_ALIASES: Final = {"bsize": "buffer_size", "rsize": "log2_ring_size"}


_DEVARGS_EXAMPLE: Final = "role=client,id=0,socket=/tmp/memif.sock,socket-abstract=no"


def _not_a_name(token: str) -> ConfigError:
    """The leading devargs token is neither key=value nor a DPDK interface name: say the right form."""
    if token.startswith("@"):
        hint = (f"devargs are key=value pairs; for an abstract socket write socket={token}, "
                f"e.g. role=client,socket={token}")
    elif "/" in token:
        hint = (f"devargs are key=value pairs; for a filesystem socket write socket={token},socket-abstract=no "
                f"(without socket-abstract=no DPDK's devargs mean an abstract name), e.g. "
                f"role=client,id=0,socket={token},socket-abstract=no")
    else:
        key = max((k for k in _BY_KEY if token.startswith((k + "-", k + ":")) and len(token) > len(k) + 1),
                  key=len, default=None)
        hint = (f"did you mean {key}={token[len(key) + 1:]}? " if key else "") + (
            f"devargs are key=value pairs, optionally after a DPDK interface name ({VDEV_PREFIX}0, "
            f"{VDEV_PREFIX}_a, ...), e.g. {VDEV_PREFIX}0,{_DEVARGS_EXAMPLE}")
    return ConfigError(f"devargs start with {token!r}, which is neither key=value nor an interface name "
                       f"starting with {VDEV_PREFIX}: {hint}", key="name", value=token)


def _unknown(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"unknown key {key!r}: {hint}known keys are {', '.join(known)}", key=key, value=None)


@dataclass(frozen=True)
class InterfaceConfig:
    """Everything needed to create one memif interface, validated on construction.

    Construct it directly with python names, or through :meth:`from_kwargs` (adds the ``@`` rule
    and DPDK aliases) or :meth:`from_devargs` (DPDK's string form and defaults). After
    construction ``socket`` never starts with ``@`` and ``socket_abstract`` says which kind it
    is; a ``socket`` starting with ``@`` always means abstract. Errors raise ConfigError.
    """

    id: int = constants.DEFAULT_ID
    role: Role = "client"
    buffer_size: int = constants.DEFAULT_BUFFER_SIZE
    log2_ring_size: int = constants.DEFAULT_LOG2_RING_SIZE
    socket: str = field(default_factory=default_socket_path)
    socket_abstract: bool = False
    mac: bytes = field(default_factory=random_local_mac)
    secret: str | None = field(default=None, repr=False)  # kept out of logs
    zero_copy: bool = False
    rx_queues: int = 1
    tx_queues: int = 1
    mode: int = constants.MODE_ETHERNET
    interrupt: bool = True
    name: str = DEFAULT_NAME
    app_name: str = DEFAULT_NAME
    reconnect: bool = True
    reconnect_interval_s: float = 1.0
    handshake_timeout_s: float = constants.DEFAULT_HANDSHAKE_TIMEOUT_S
    max_map_bytes: int = constants.DEFAULT_MAX_MAP_BYTES  # server: regions one client may make us map
    accept_unsealed_hugetlbfs: bool = False  # server: map DPDK zero-copy memsegs (a peer could SIGBUS us)
    socket_mode: int = 0o600  # server: permissions of a filesystem socket (owner only)
    owner_uid: int | None = None  # server: chown the socket file (DPDK owner-uid)
    owner_gid: int | None = None  # server: chgrp the socket file (DPDK owner-gid)
    allowed_uids: tuple[int, ...] | None = None  # both roles: peers whose SO_PEERCRED uid is accepted

    def __post_init__(self) -> None:
        for option in _OPTIONS:
            value = option.coerce(option.key, getattr(self, option.attr))
            object.__setattr__(self, option.attr, value)
        name, abstract = resolve_socket(self.socket, self.socket_abstract)
        object.__setattr__(self, "socket", name)
        object.__setattr__(self, "socket_abstract", abstract)
        if self.zero_copy and self.role == "server":
            # Mirror DPDK memif_create(): the client owns the memory; a server only maps it.
            _log.info(
                "zero-copy ignored on server interface %r: only a client can provide zero-copy memory",
                self.name,
            )
            object.__setattr__(self, "zero_copy", False)

    # --- constructors --------------------------------------------------------------------

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> InterfaceConfig:
        """Build from python names (``bsize``/``rsize`` accepted as aliases).

        ``socket_abstract=None`` (the default) means "abstract iff the socket starts with @";
        ``mac=None`` means a random locally administered address; ``secret=None`` or ``""``
        means no secret. Values may also be given as devargs strings (``zero_copy="yes"``).
        """
        known = sorted([*_BY_ATTR, *_KWARG_ALIASES])
        values: dict[str, Any] = {}
        spelt: dict[str, str] = {}
        for key, raw in kwargs.items():
            attr = _KWARG_ALIASES.get(key, key)
            if attr not in _BY_ATTR:
                raise _unknown(key, known)
            if attr in spelt:
                raise ConfigError(
                    f"{key} and {spelt[attr]} both set {attr}: give only one", key=key, value=raw
                )
            spelt[attr] = key
            if raw is None and attr == "socket_abstract":
                continue  # "decide for me": abstract iff the socket starts with @
            values[attr] = _BY_ATTR[attr].coerce(key, raw)
        cls._check_at_rule(
            values, spelt.get("socket", "socket"), spelt.get("socket_abstract", "socket_abstract")
        )
        return cls(**values)

    @classmethod
    def from_devargs(cls, devargs: str) -> InterfaceConfig:
        """Parse DPDK ``--vdev`` arguments, e.g. ``net_memif0,role=server,socket=/tmp/x.sock``.

        A leading token without ``=`` is the interface name if it looks like DPDK's
        (``net_memif...``); anything else there (a socket path, ``role-server``) is an error that
        shows the right form. ``name=`` sets any other name. DPDK's defaults apply (see the
        module docstring): client role, abstract socket ``/run/memif.sock``, random MAC.
        Duplicate keys are rejected (DPDK would silently keep the last one).
        """
        if not isinstance(devargs, str):
            raise ConfigError(f"devargs is a {type(devargs).__name__}, not a string like "
                              f"net_memif0,role=server", key=None, value=devargs)
        tokens = devargs.strip().split(",")
        values: dict[str, Any] = {"socket": DPDK_DEFAULT_SOCKET}
        seen: set[str] = set()
        if tokens and "=" not in tokens[0]:
            first = tokens[0].strip()
            if first:
                if not first.startswith(VDEV_PREFIX):
                    raise _not_a_name(first)
                values["name"] = _BY_ATTR["name"].coerce("name", first)
                seen.add("name")
            tokens = tokens[1:]
        for token in tokens:
            if not token.strip():
                continue  # tolerate "a=1,,b=2" and a trailing comma
            key, eq, text = token.partition("=")
            key = key.strip()
            option = _BY_KEY.get(key)
            if option is None:
                raise _unknown(key, list(_BY_KEY))
            if key in seen:
                also = " (the leading net_memif... token is the name)" if key == "name" else ""
                raise ConfigError(f"{key} is given twice{also}: give each key once", key=key, value=text)
            seen.add(key)
            if not eq or not text:
                raise ConfigError(f"{key} has no value: write {key}=VALUE", key=key, value=None)
            if "=" in text:  # DPDK's rte_kvargs ends a value at its next '=': both sides must agree
                raise ConfigError(f"{key}'s value contains '=': DPDK would read only what comes before it, "
                                  "so a value may not contain '='", key=key, value=None)
            values[option.attr] = option.coerce(key, text)
        if "socket-abstract" not in seen and not values["socket"].startswith("@"):
            values["socket_abstract"] = True  # DPDK: "use abstract address by default"
        cls._check_at_rule(values, "socket", "socket-abstract")
        return cls(**values)

    @staticmethod
    def _check_at_rule(values: dict[str, Any], socket_key: str, abstract_key: str) -> None:
        """'@name' means abstract; an explicit "not abstract" next to it is a contradiction."""
        socket = values.get("socket")
        if isinstance(socket, str) and socket.startswith("@") and values.get("socket_abstract") is False:
            raise ConfigError(
                f"{socket_key}={socket} names an abstract socket but {abstract_key} is no: "
                f"drop the @ for a filesystem path, or drop {abstract_key}",
                key=abstract_key,
                value=False,
            )

    # --- derived views -------------------------------------------------------------------

    @property
    def is_server(self) -> bool:
        return self.role == "server"

    @property
    def role_code(self) -> int:
        """constants.ROLE_CLIENT or constants.ROLE_SERVER, for the C side."""
        return constants.ROLE_SERVER if self.is_server else constants.ROLE_CLIENT

    @property
    def socket_display(self) -> str:
        """The socket in libmemif's spelling (``@name`` when abstract), for logs and messages."""
        return socket_display(self.socket, self.socket_abstract)

    def socket_address(self) -> str | bytes:
        """What ``socket.bind``/``connect`` take (see the module function socket_address)."""
        return socket_address(self.socket, self.socket_abstract)

    def to_devargs(self, *, dpdk_only: bool = False) -> str:
        """The devargs string that :meth:`from_devargs` turns back into an equal config.

        Every key is written, including the MAC, so the round trip is exact. The name leads as
        DPDK's does when it looks like DPDK's (``net_memif...``), else it is written ``name=``.
        With ``dpdk_only=True`` only keys DPDK net/memif knows are written and the leading token
        is a DPDK vdev name (ours if it starts with ``net_memif``, else ``net_memif0``): a string
        to hand to ``--vdev=``. Raises ConfigError for a value devargs cannot carry (a comma, or
        an '=', which DPDK would end the value at).
        """
        name = self.name
        leads = name.startswith(VDEV_PREFIX) and "=" not in name
        if dpdk_only and not leads:
            name, leads = f"{VDEV_PREFIX}0", True
        parts = [name] if leads else [f"name={name}"]
        for option in _OPTIONS:
            if option.attr == "name" or (dpdk_only and not option.dpdk):
                continue
            value = getattr(self, option.attr)
            if value is None:
                continue
            parts.append(f"{option.key}={self._format(option.attr, value)}")
        for part in parts:
            key, _eq, value = ("name", "", part) if part is parts[0] and leads else part.partition("=")
            for char, what in ((",", "a comma"), ("=", "an '='")):
                if char in value:
                    raise ConfigError(f"{key} contains {what}, which devargs cannot carry", key=key, value=None)
        return ",".join(parts)

    @staticmethod
    def _format(attr: str, value: object) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if attr == "mac" and isinstance(value, bytes):
            return mac_to_str(value)
        if attr == "mode" and isinstance(value, int):
            return _MODE_NAMES[value]
        if attr == "socket_mode" and isinstance(value, int):
            return f"{value:04o}"
        if attr == "allowed_uids" and isinstance(value, tuple):
            return ":".join(map(str, value))
        return repr(value) if isinstance(value, float) else str(value)

    def replace(self, **changes: Any) -> InterfaceConfig:
        """A copy with some fields changed (python names), validated like the original.

        ``socket_abstract`` is carried over unless given: replacing an abstract socket with a
        path needs ``socket_abstract=False`` too (a ``@name`` always switches to abstract).
        """
        for key in changes:
            if key not in _BY_ATTR:
                raise _unknown(key, list(_BY_ATTR))
        return dataclasses.replace(self, **changes)
