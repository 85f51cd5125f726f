"""InterfaceConfig: defaults in both forms, every key valid and invalid, the abstract-socket rules,
the devargs round trip, and error messages that name the key, the value and what is allowed."""

from __future__ import annotations

import logging
import re

import pytest

from memif_ct import constants
from memif_ct.config import DPDK_DEFAULT_SOCKET, InterfaceConfig, default_socket_path
from memif_ct.errors import ArgumentError, ConfigError, MemifError
from memif_ct.macaddr import MAC_SIZE, mac_to_str, random_local_mac, str_to_mac


def devargs_error(devargs: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        InterfaceConfig.from_devargs(devargs)
    return info.value


def kwargs_error(**kwargs: object) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        InterfaceConfig.from_kwargs(**kwargs)
    return info.value


def is_random_local_unicast(mac: bytes) -> bool:
    return len(mac) == MAC_SIZE and mac[0] & 0x01 == 0 and mac[0] & 0x02 == 0x02


# --- defaults ----------------------------------------------------------------------------


def test_keyword_defaults() -> None:
    cfg = InterfaceConfig.from_kwargs()
    assert cfg.id == 0
    assert cfg.role == "client"
    assert cfg.buffer_size == 2048
    assert cfg.log2_ring_size == 10
    assert cfg.socket == default_socket_path()  # never /tmp: see test_access.py
    assert cfg.socket_abstract is False
    assert cfg.secret is None
    assert cfg.zero_copy is False
    assert (cfg.rx_queues, cfg.tx_queues) == (1, 1)
    assert cfg.mode == constants.MODE_ETHERNET
    assert cfg.interrupt is True
    assert cfg.name == "memif-ct"
    assert cfg.app_name == "memif-ct"
    assert cfg.reconnect is True
    assert cfg.reconnect_interval_s == 1.0
    assert cfg.handshake_timeout_s == constants.DEFAULT_HANDSHAKE_TIMEOUT_S == 5.0
    assert (cfg.socket_mode, cfg.owner_uid, cfg.owner_gid, cfg.allowed_uids) == (0o600, None, None, None)
    assert is_random_local_unicast(cfg.mac)
    assert InterfaceConfig(mac=cfg.mac) == cfg


def test_devargs_defaults_are_dpdks() -> None:
    # rte_pmd_memif_probe: role client, abstract socket /run/memif.sock, random MAC.
    cfg = InterfaceConfig.from_devargs("net_memif0")
    assert cfg.name == "net_memif0"
    assert cfg.role == "client"
    assert cfg.socket == DPDK_DEFAULT_SOCKET == "/run/memif.sock"
    assert cfg.socket_abstract is True
    assert cfg.socket_address() == b"\0/run/memif.sock"
    assert cfg.buffer_size == 2048 and cfg.log2_ring_size == 10 and cfg.id == 0
    assert cfg.zero_copy is False
    assert is_random_local_unicast(cfg.mac)


def test_devargs_socket_is_abstract_by_default_like_dpdk() -> None:
    cfg = InterfaceConfig.from_devargs("net_memif0,socket=/x.sock")
    assert cfg.socket_abstract is True
    assert cfg.socket_address() == b"\0/x.sock"


def test_random_macs_differ_per_interface() -> None:
    macs = {InterfaceConfig().mac for _ in range(20)}
    assert len(macs) == 20
    assert all(is_random_local_unicast(m) for m in macs)


def test_devargs_without_leading_name() -> None:
    cfg = InterfaceConfig.from_devargs("role=server,id=7")
    assert cfg.name == "memif-ct"
    assert cfg.role == "server" and cfg.id == 7
    assert InterfaceConfig.from_devargs("").name == "memif-ct"


def test_devargs_tolerates_empty_tokens_and_spaces_around_keys() -> None:
    cfg = InterfaceConfig.from_devargs("net_memif1, role=server,,id=2,")
    assert (cfg.name, cfg.role, cfg.id) == ("net_memif1", "server", 2)


# --- every key, valid ----------------------------------------------------------------------

VALID_DEVARGS = [
    ("id=0", "id", 0),
    ("id=4294967295", "id", 0xFFFFFFFF),
    ("role=server", "role", "server"),
    ("role=client", "role", "client"),
    ("role=master", "role", "server"),  # DPDK's deprecated spellings
    ("role=slave", "role", "client"),
    ("role=SERVER", "role", "server"),
    ("bsize=64", "buffer_size", 64),
    ("bsize=65535", "buffer_size", 65535),
    ("rsize=1", "log2_ring_size", 1),
    ("rsize=14", "log2_ring_size", 14),
    ("socket=/tmp/a.sock,socket-abstract=no", "socket", "/tmp/a.sock"),
    ("socket-abstract=no", "socket_abstract", False),
    ("socket-abstract=yes", "socket_abstract", True),
    ("mac=02:11:22:33:44:55", "mac", bytes.fromhex("021122334455")),
    ("mac=02-11-22-33-44-5", "mac", bytes.fromhex("021122334405")),
    ("mac=AA:BB:CC:DD:EE:FE", "mac", bytes.fromhex("aabbccddeefe")),
    ("secret=s3cr3t", "secret", "s3cr3t"),
    ("secret=" + "x" * 23, "secret", "x" * 23),
    ("zero-copy=yes", "zero_copy", True),
    ("zero-copy=no", "zero_copy", False),
    ("rx-queues=1", "rx_queues", 1),
    ("rx-queues=255", "rx_queues", 255),
    ("tx-queues=255", "tx_queues", 255),
    ("mode=ethernet", "mode", constants.MODE_ETHERNET),
    ("mode=ip", "mode", constants.MODE_IP),
    ("mode=punt-inject", "mode", constants.MODE_PUNT_INJECT),
    ("interrupt=no", "interrupt", False),
    ("interrupt=yes", "interrupt", True),
    ("app-name=" + "a" * 31, "app_name", "a" * 31),
    ("reconnect=no", "reconnect", False),
    ("reconnect=True", "reconnect", True),
    ("reconnect=off", "reconnect", False),
    ("reconnect=1", "reconnect", True),
    ("reconnect-interval=0.01", "reconnect_interval_s", 0.01),
    ("reconnect-interval=3600", "reconnect_interval_s", 3600.0),
    ("handshake-timeout=0.1", "handshake_timeout_s", 0.1),
    ("handshake-timeout=600", "handshake_timeout_s", 600.0),
]


@pytest.mark.parametrize(("devargs", "attr", "expected"), VALID_DEVARGS)
def test_devargs_valid_value(devargs: str, attr: str, expected: object) -> None:
    assert getattr(InterfaceConfig.from_devargs("net_memif0," + devargs), attr) == expected


def test_name_from_leading_token_at_limit() -> None:
    name = "net_memif" + "n" * 22
    assert InterfaceConfig.from_devargs(name).name == name
    assert InterfaceConfig.from_devargs("name=" + "n" * 31).name == "n" * 31


@pytest.mark.parametrize(
    ("devargs", "right_form"),
    [
        ("/tmp/x.sock", "socket=/tmp/x.sock,socket-abstract=no"),
        ("@mine", "socket=@mine"),
        ("role-server,id=0", "did you mean role=server?"),
        ("socket-abstract-no,role=server", "did you mean socket-abstract=no?"),
        ("id:3", "did you mean id=3?"),
        ("eth0,role=server", "net_memif0,role=client,id=0,socket=/tmp/memif.sock,socket-abstract=no"),
        ("memif-ct", "net_memif0,"),
    ],
)
def test_a_leading_token_that_is_no_interface_name_is_an_error_showing_the_right_form(
        devargs: str, right_form: str) -> None:
    err = devargs_error(devargs)
    first = devargs.split(",")[0]
    assert str(err).startswith(f"devargs start with {first!r}, which is neither key=value nor an interface name "
                               "starting with net_memif: ")
    assert right_form in str(err)
    assert (err.key, err.value) == ("name", first)


def test_a_leading_name_and_name_key_together_are_a_duplicate() -> None:
    assert "name is given twice" in str(devargs_error("net_memif0,name=x"))
    assert InterfaceConfig.from_devargs("name=x,role=server").name == "x"


def test_dpdk_owner_keys_are_parsed() -> None:
    cfg = InterfaceConfig.from_devargs("net_memif0,role=server,owner-uid=1000,owner-gid=100")
    assert (cfg.owner_uid, cfg.owner_gid) == (1000, 100)
    assert "owner-uid=x is not a decimal integer" in str(devargs_error("owner-uid=x"))


def test_keyword_values_of_every_field() -> None:
    cfg = InterfaceConfig.from_kwargs(
        id=9,
        role="server",
        buffer_size=4096,
        log2_ring_size=12,
        socket="/tmp/k.sock",
        socket_abstract=False,
        mac="02:00:00:00:00:09",
        secret="pw",
        zero_copy=False,
        rx_queues=4,
        tx_queues=3,
        mode=constants.MODE_IP,
        interrupt=False,
        name="if9",
        app_name="app",
        reconnect=False,
        reconnect_interval_s=0.5,
        handshake_timeout_s=2,
        max_map_bytes=1 << 30,
        accept_unsealed_hugetlbfs=True,
        socket_mode="0660",
        owner_uid=1000,
        owner_gid="100",
        allowed_uids="0:1000",
    )
    assert cfg.to_devargs() == (
        "name=if9,id=9,role=server,bsize=4096,rsize=12,socket=/tmp/k.sock,socket-abstract=no,"
        "mac=02:00:00:00:00:09,secret=pw,zero-copy=no,rx-queues=4,tx-queues=3,mode=ip,"
        "interrupt=no,app-name=app,reconnect=no,reconnect-interval=0.5,handshake-timeout=2.0,"
        "max-map-bytes=1073741824,accept-unsealed-hugetlbfs=yes,socket-mode=0660,owner-uid=1000,owner-gid=100,"
        "allowed-uids=0:1000"
    )
    assert (cfg.socket_mode, cfg.owner_uid, cfg.owner_gid, cfg.allowed_uids) == (0o660, 1000, 100, (0, 1000))
    assert InterfaceConfig.from_devargs(cfg.to_devargs()) == cfg
    with pytest.raises(ConfigError, match="socket-mode=0999 is not an octal mode"):
        InterfaceConfig.from_devargs("socket-mode=0999")
    with pytest.raises(ConfigError, match="allowed-uids=x is not a decimal integer: each uid must be 0..4294967294"):
        InterfaceConfig.from_devargs("allowed-uids=0:x")
    assert cfg.handshake_timeout_s == 2.0 and isinstance(cfg.handshake_timeout_s, float)


def test_keyword_aliases_and_string_values() -> None:
    cfg = InterfaceConfig.from_kwargs(
        bsize=1024, rsize="11", zero_copy="yes", mode="punt-inject", mac=b"\x02" * 6
    )
    assert (cfg.buffer_size, cfg.log2_ring_size, cfg.zero_copy) == (1024, 11, True)
    assert cfg.mode == constants.MODE_PUNT_INJECT
    assert cfg.mac == b"\x02" * 6


def test_keyword_empty_secret_means_none() -> None:
    assert InterfaceConfig.from_kwargs(secret="").secret is None
    assert InterfaceConfig.from_kwargs(secret=None).secret is None


def test_secret_is_not_in_repr() -> None:
    assert "hunter2" not in repr(InterfaceConfig(secret="hunter2"))


# --- every key, invalid ----------------------------------------------------------------------

INVALID_DEVARGS = [
    # (devargs, key, fragments the message must contain)
    ("id=-1", "id", ["id=-1", "0..4294967295"]),
    ("id=4294967296", "id", ["id=4294967296", "0..4294967295"]),
    ("id=abc", "id", ["id=abc", "integer"]),
    ("id=0x10", "id", ["id=0x10", "decimal"]),
    ("role=peer", "role", ["role=peer", "client or server"]),
    ("bsize=63", "bsize", ["bsize=63", "64..65535"]),
    ("bsize=65536", "bsize", ["bsize=65536", "64..65535"]),
    ("bsize=2k", "bsize", ["bsize=2k", "64..65535"]),
    ("rsize=0", "rsize", ["rsize=0", "1..14"]),
    ("rsize=15", "rsize", ["rsize=15 is out of range: log2 ring size must be 1..14"]),
    ("socket-abstract=maybe", "socket-abstract", ["socket-abstract=maybe", "yes or no"]),
    ("socket=" + "a" * 108, "socket", ["socket=", "108 bytes", "107"]),
    ("socket=/" + "a" * 107 + ",socket-abstract=no", "socket", ["108 bytes", "107"]),
    ("socket=@", "socket", ["socket=@", "@name"]),
    ("mac=02:00:00:00:00", "mac", ["mac=02:00:00:00:00", "MAC"]),
    ("mac=02:00:00:00:00:zz", "mac", ["mac=02:00:00:00:00:zz", "MAC"]),
    ("mac=01:00:5e:00:00:01", "mac", ["multicast"]),
    ("mac=00:00:00:00:00:00", "mac", ["all-zero"]),
    ("mac=02:00:00:00:00:+1", "mac", ["mac=02:00:00:00:00:+1", "MAC"]),  # int(.., 16) would take it
    ("mac=02:00:00:00:00:\u0661", "mac", ["MAC"]),  # an Arabic-Indic digit one, ditto
    ("id=\u00b2", "id", ["decimal"]),  # "²".isdigit() is True, int() refuses it
    ("id=" + "9" * 5000, "id", ["is out of range", "0..4294967295"]),  # past int()'s digit limit
    ("secret=" + "x" * 24, "secret", ["secret", "24 characters", "at most 23"]),
    ("secret=caf\u00e9", "secret", ["secret", "printable ASCII"]),
    ("zero-copy=si", "zero-copy", ["zero-copy=si", "yes or no"]),
    ("rx-queues=0", "rx-queues", ["rx-queues=0", "1..255"]),
    ("tx-queues=256", "tx-queues", ["tx-queues=256", "1..255"]),
    ("mode=tun", "mode", ["mode=tun", "ethernet, ip or punt-inject"]),
    ("interrupt=2", "interrupt", ["interrupt=2", "yes or no"]),
    ("app-name=" + "a" * 32, "app-name", ["32 bytes", "1..31"]),
    ("reconnect=often", "reconnect", ["reconnect=often", "yes or no"]),
    ("reconnect-interval=0.001", "reconnect-interval", ["reconnect-interval=0.001", "0.01..3600"]),
    ("reconnect-interval=nan", "reconnect-interval", ["reconnect-interval=nan", "0.01..3600"]),
    ("reconnect-interval=soon", "reconnect-interval", ["not a number", "0.01..3600"]),
    ("handshake-timeout=601", "handshake-timeout", ["handshake-timeout=601", "0.1..600"]),
    ("handshake-timeout=0", "handshake-timeout", ["handshake-timeout=0", "0.1..600"]),
]


@pytest.mark.parametrize(("devargs", "key", "fragments"), INVALID_DEVARGS)
def test_devargs_invalid_value(devargs: str, key: str, fragments: list[str]) -> None:
    err = devargs_error("net_memif0," + devargs)
    assert err.key == key
    for fragment in fragments:
        assert fragment in str(err)


def test_secret_never_echoed_in_errors() -> None:
    err = devargs_error("net_memif0,secret=" + "topsecret" * 3)
    assert "topsecret" not in str(err)


def test_name_too_long() -> None:
    for devargs in ("net_memif" + "n" * 23 + ",id=1", "name=" + "n" * 32):
        err = devargs_error(devargs)
        assert err.key == "name" and "1..31" in str(err)


def test_unknown_key_suggests_closest() -> None:
    err = devargs_error("net_memif0,rsiz=4")
    assert err.key == "rsiz"
    assert "did you mean 'rsize'" in str(err)
    err = devargs_error("net_memif0,socket_abstract=no")
    assert "did you mean 'socket-abstract'" in str(err)
    err = devargs_error("net_memif0,qqq=1")
    assert "did you mean" not in str(err) and "known keys are" in str(err)


def test_unknown_kwarg_suggests_closest() -> None:
    err = kwargs_error(log2_ringsize=4)
    assert err.key == "log2_ringsize" and "did you mean 'log2_ring_size'" in str(err)


def test_duplicate_key_rejected() -> None:
    err = devargs_error("net_memif0,id=1,id=2")
    assert err.key == "id" and "twice" in str(err)
    err = kwargs_error(bsize=1024, buffer_size=2048)
    assert "buffer_size" in str(err) and "bsize" in str(err)


@pytest.mark.parametrize("devargs", ["net_memif0,id", "net_memif0,id=", "net_memif0,secret="])
def test_missing_value_rejected(devargs: str) -> None:
    err = devargs_error(devargs)
    assert err.key in ("id", "secret") and "no value" in str(err)


def test_keyword_errors_use_the_spelling_given() -> None:
    err = kwargs_error(log2_ring_size=15)
    assert str(err) == "log2_ring_size=15 is out of range: log2 ring size must be 1..14"
    assert err.key == "log2_ring_size" and err.value == 15
    err = kwargs_error(rsize=0)
    assert err.key == "rsize" and "rsize=0" in str(err)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"id": True}, "id"),
        ({"id": 1.5}, "id"),
        ({"buffer_size": None}, "buffer_size"),
        ({"zero_copy": 1}, "zero_copy"),
        ({"mode": 7}, "mode"),
        ({"mac": b"\x02" * 5}, "mac"),
        ({"secret": 123}, "secret"),
        ({"name": ""}, "name"),
        ({"name": "a\0b"}, "name"),
        ({"socket": ""}, "socket"),
        ({"reconnect_interval_s": True}, "reconnect_interval_s"),
    ],
)
def test_keyword_wrong_types(kwargs: dict[str, object], key: str) -> None:
    assert kwargs_error(**kwargs).key == key


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ConfigError, match=re.escape("rsize=20 is out of range")):
        InterfaceConfig(log2_ring_size=20)


# --- sockets ------------------------------------------------------------------------------


def test_at_prefix_means_abstract_in_keywords() -> None:
    cfg = InterfaceConfig.from_kwargs(socket="@memif-ct/a")
    assert cfg.socket == "memif-ct/a" and cfg.socket_abstract is True
    assert cfg.socket_address() == b"\0memif-ct/a"  # no trailing NUL
    assert cfg.socket_display == "@memif-ct/a"


def test_plain_socket_is_a_path_in_keywords() -> None:
    cfg = InterfaceConfig.from_kwargs(socket="/tmp/p.sock")
    assert cfg.socket_abstract is False
    assert cfg.socket_address() == "/tmp/p.sock"
    assert cfg.socket_display == "/tmp/p.sock"


def test_explicit_abstract_without_at() -> None:
    cfg = InterfaceConfig.from_kwargs(socket="plain", socket_abstract=True)
    assert cfg.socket_address() == b"\0plain"


def test_at_prefix_means_abstract_in_devargs() -> None:
    cfg = InterfaceConfig.from_devargs("net_memif0,socket=@abc")
    assert cfg.socket == "abc" and cfg.socket_abstract is True
    cfg = InterfaceConfig.from_devargs("net_memif0,socket=@abc,socket-abstract=yes")
    assert cfg.socket == "abc" and cfg.socket_abstract is True


def test_at_prefix_contradicting_not_abstract_is_an_error() -> None:
    err = devargs_error("net_memif0,socket=@abc,socket-abstract=no")
    assert err.key == "socket-abstract" and "@abc" in str(err)
    err = kwargs_error(socket="@abc", socket_abstract=False)
    assert err.key == "socket_abstract"


def test_socket_length_limits() -> None:
    assert InterfaceConfig.from_kwargs(socket="/" + "a" * 106).socket_address() == "/" + "a" * 106
    assert InterfaceConfig.from_kwargs(socket="@" + "a" * 107).socket_address() == b"\0" + b"a" * 107
    assert "107" in str(kwargs_error(socket="/" + "a" * 107))
    assert "107" in str(kwargs_error(socket="@" + "a" * 108))
    # The limit is in bytes, not characters.
    assert kwargs_error(socket="/" + "\u00e9" * 54).key == "socket"


# --- role rules --------------------------------------------------------------------------


def test_zero_copy_kept_for_client() -> None:
    assert InterfaceConfig.from_devargs("net_memif0,role=client,zero-copy=yes").zero_copy is True


def test_zero_copy_dropped_for_server_like_dpdk(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="memif_ct.config"):
        cfg = InterfaceConfig.from_devargs("net_memif0,role=server,zero-copy=yes")
    assert cfg.zero_copy is False
    assert "zero-copy ignored" in caplog.text


def test_role_code() -> None:
    assert InterfaceConfig(role="server").role_code == constants.ROLE_SERVER
    assert InterfaceConfig().role_code == constants.ROLE_CLIENT
    assert InterfaceConfig(role="server").is_server


# --- round trip ----------------------------------------------------------------------------

ROUND_TRIP = [
    "net_memif0",
    "net_memif0,role=server,id=3,socket=/tmp/x.sock,socket-abstract=no",
    "net_memif5,socket=@abs,secret=p@ss w rd,zero-copy=yes,rsize=14,bsize=9000",
    (
        "name=x,mode=ip,interrupt=no,rx-queues=8,tx-queues=2,app-name=tool,reconnect=no,"
        "reconnect-interval=0.25,handshake-timeout=30"
    ),
]


@pytest.mark.parametrize("devargs", ROUND_TRIP)
def test_devargs_round_trip(devargs: str) -> None:
    cfg = InterfaceConfig.from_devargs(devargs)
    text = cfg.to_devargs()
    assert InterfaceConfig.from_devargs(text) == cfg
    assert InterfaceConfig.from_devargs(text).to_devargs() == text


def test_keyword_config_round_trips_through_devargs() -> None:
    cfg = InterfaceConfig.from_kwargs(socket="/tmp/k.sock", role="server", reconnect_interval_s=0.1)
    assert InterfaceConfig.from_devargs(cfg.to_devargs()) == cfg


def test_dpdk_only_devargs() -> None:
    cfg = InterfaceConfig.from_kwargs(
        name="memif-ct", socket="/tmp/d.sock", role="server", mac="02:00:00:00:00:07", rx_queues=2
    )
    text = cfg.to_devargs(dpdk_only=True)
    assert text == (
        "net_memif0,id=0,role=server,bsize=2048,rsize=10,socket=/tmp/d.sock,"
        "socket-abstract=no,mac=02:00:00:00:00:07,zero-copy=no"
    )
    assert InterfaceConfig.from_devargs("net_memif3").to_devargs(dpdk_only=True).startswith("net_memif3,")


def test_to_devargs_refuses_commas() -> None:
    with pytest.raises(ConfigError) as info:
        InterfaceConfig(secret="a,b").to_devargs()
    assert info.value.key == "secret"
    with pytest.raises(ConfigError) as info:
        InterfaceConfig(name="a,b").to_devargs()
    assert info.value.key == "name"
    with pytest.raises(ConfigError, match="an '='") as info:  # DPDK would end the value there
        InterfaceConfig(name="a=b").to_devargs()
    assert info.value.key == "name"
    assert InterfaceConfig(name="net_memif7").to_devargs().startswith("net_memif7,id=0,")


def test_replace_revalidates() -> None:
    cfg = InterfaceConfig()
    assert cfg.replace(log2_ring_size=5).log2_ring_size == 5
    with pytest.raises(ConfigError):
        cfg.replace(log2_ring_size=0)
    with pytest.raises(ConfigError, match="unknown key 'rsize'") as info:
        cfg.replace(rsize=5)
    assert info.value.key == "rsize"


def test_config_is_frozen() -> None:
    cfg = InterfaceConfig()
    with pytest.raises(AttributeError):
        cfg.id = 3  # type: ignore[misc]


# --- only MemifError comes out ------------------------------------------------------------


def test_leading_zeros_are_still_a_number() -> None:
    assert InterfaceConfig.from_devargs("net_memif0,id=" + "0" * 200 + "7").id == 7


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": 10**5000},  # repr() of it would raise ValueError
        {"handshake_timeout_s": 10**400},  # float() of it would raise OverflowError
        {"reconnect_interval_s": -(10**400)},
        {"name": "bad\udc80"},  # a lone surrogate: no UTF-8 for the wire
        {"app_name": "\ud800"},
        {"socket": "/tmp/\udcff.sock"},
        {"socket": "@\udcff"},
        {"secret": "\udcff"},
        {"bogus": 1},
    ],
)
def test_hostile_keyword_values_raise_config_error(kwargs: dict[str, object]) -> None:
    err = kwargs_error(**kwargs)
    assert err.key == next(iter(kwargs))
    str(err)  # the message itself can be built


def test_devargs_must_be_text() -> None:
    with pytest.raises(ConfigError, match="devargs is a bytes"):
        InterfaceConfig.from_devargs(b"net_memif0")  # type: ignore[arg-type]


# --- MAC addresses (memif_ct.macaddr, which config uses for mac=) ---------------------------


def test_mac_helpers() -> None:
    assert mac_to_str(bytes.fromhex("0a1b2c3d4e5f")) == "0a:1b:2c:3d:4e:5f"
    assert str_to_mac("0A:1b:2C:3d:4E:5f") == bytes.fromhex("0a1b2c3d4e5f")
    assert str_to_mac("2-0-0-0-0-1") == bytes.fromhex("020000000001")
    for bad in ["", "0a:1b:2c:3d:4e", "0a:1b:2c:3d:4e:5f:00", "0a:1b:2c:3d:4e:zz", "0a:1b:2c:3d:4e:5f0",
                "0a:1b:2c:3d:4e: f", "0a:1b:2c:3d:4e:+f", "0a:1b:2c:3d:4e:\u0661"]:
        with pytest.raises(ArgumentError, match="is not a MAC address") as info:
            str_to_mac(bad)
        assert isinstance(info.value, ValueError) and isinstance(info.value, MemifError)
    with pytest.raises(ArgumentError):
        mac_to_str(b"\0" * 5)


def test_random_local_mac() -> None:
    for _ in range(100):
        mac = random_local_mac()
        assert len(mac) == 6 and mac[0] & 0x03 == 0x02


def test_server_memory_options_parse_from_devargs_and_keywords() -> None:
    cfg = InterfaceConfig.from_devargs("role=server,max-map-bytes=1048576,accept-unsealed-hugetlbfs=yes")
    assert (cfg.max_map_bytes, cfg.accept_unsealed_hugetlbfs) == (1 << 20, True)
    assert InterfaceConfig().max_map_bytes == constants.DEFAULT_MAX_MAP_BYTES
    assert InterfaceConfig().accept_unsealed_hugetlbfs is False
    with pytest.raises(ConfigError, match="max-map-bytes=100 is out of range"):
        InterfaceConfig.from_devargs("role=server,max-map-bytes=100")
    assert InterfaceConfig.from_kwargs(max_map_bytes=1 << 30).max_map_bytes == 1 << 30


def test_integers_with_thousands_of_leading_zeros_are_their_value_not_a_valueerror() -> None:
    """int() counts leading zeros towards its 4,300-digit limit: every integer key raised a plain
    ValueError naming no field (found by a review)."""
    cfg = InterfaceConfig.from_devargs("id=" + "0" * 5000 + "7,bsize=" + "0" * 5000 + "1024")
    assert (cfg.id, cfg.buffer_size) == (7, 1024)
    with pytest.raises(ConfigError, match="bsize"):
        InterfaceConfig.from_devargs("bsize=" + "0" * 5000 + "9" * 20)


def test_a_value_with_an_equals_sign_is_refused_as_dpdk_would_cut_it() -> None:
    """DPDK's rte_kvargs ends a value at its next '=': secret=a=b is secret "a" to testpmd. Taken
    whole here, the two sides' secrets differed with no word why (found by a review). The value
    is not echoed: it may be a secret."""
    with pytest.raises(ConfigError, match="secret's value contains '='") as info:
        InterfaceConfig.from_devargs("role=server,secret=a=b")
    assert "a=b" not in str(info.value)
