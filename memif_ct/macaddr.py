"""MAC addresses: the text form DPDK devargs use, and the random address DPDK gives a port.

Pure functions on 6-byte ``bytes``; errors are ArgumentError (a ValueError) naming the value.
"""

from __future__ import annotations

import secrets

from .errors import ArgumentError

__all__ = ["MAC_SIZE", "mac_to_str", "random_local_mac", "str_to_mac"]

MAC_SIZE = 6
_EXPECTED = "expected 6 hex groups like aa:bb:cc:dd:ee:ff"


def mac_to_str(mac: bytes) -> str:
    """Format 6 bytes as ``aa:bb:cc:dd:ee:ff`` (lower case, the spelling DPDK devargs accept)."""
    if len(mac) != MAC_SIZE:
        raise ArgumentError(f"a MAC address is {MAC_SIZE} bytes, got {len(mac)}")
    return ":".join(f"{b:02x}" for b in mac)


def str_to_mac(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (``-`` also accepted, 1-2 hex digits per group).

    Raises ArgumentError naming the text; callers that know the option name wrap it.
    """
    groups = text.replace("-", ":").split(":")
    hex_digits = "0123456789abcdefABCDEF"
    if len(groups) != MAC_SIZE or not all(1 <= len(g) <= 2 and all(c in hex_digits for c in g)
                                          for g in groups):
        raise ArgumentError(f"{text!r} is not a MAC address: {_EXPECTED}")
    return bytes(int(g, 16) for g in groups)


def random_local_mac() -> bytes:
    """A random locally administered unicast MAC, as DPDK's ``rte_eth_random_addr`` makes.

    DPDK gives every memif port without ``mac=`` such an address, so two ports never collide
    and none can clash with a vendor-assigned address.
    """
    mac = bytearray(secrets.token_bytes(MAC_SIZE))
    mac[0] = (mac[0] & ~0x01) | 0x02  # clear the group (multicast) bit, set the local bit
    return bytes(mac)
