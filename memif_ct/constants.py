"""memif protocol v2.0 constants: the single Python source of truth.

Their C twins live in ``csrc/memif_ct.h``; ``tests/test_constants.py`` proves the two agree by
reading the table the C library exports. See ``memif-protocol.md`` sections 2 and 3.
"""

from __future__ import annotations

from typing import Final

COOKIE: Final = 0x3E31F20
VERSION: Final = 0x0200  # major 2 << 8 | minor 0
VERSION_MAJOR: Final = 2
VERSION_MINOR: Final = 0

MSG_SIZE: Final = 128  # every control message is exactly this many bytes

# Message types.
MSG_TYPE_NONE: Final = 0
MSG_TYPE_ACK: Final = 1
MSG_TYPE_HELLO: Final = 2
MSG_TYPE_INIT: Final = 3
MSG_TYPE_ADD_REGION: Final = 4
MSG_TYPE_ADD_RING: Final = 5
MSG_TYPE_CONNECT: Final = 6
MSG_TYPE_CONNECTED: Final = 7
MSG_TYPE_DISCONNECT: Final = 8

# Ring types (DPDK: C2S / S2C).
RING_TYPE_S2M: Final = 0
RING_TYPE_M2S: Final = 1

# Interface modes.
MODE_ETHERNET: Final = 0
MODE_IP: Final = 1
MODE_PUNT_INJECT: Final = 2

ADD_RING_FLAG_S2M: Final = 1  # ADD_RING flags bit 0: this ring is S2M (C2S)
DESC_FLAG_NEXT: Final = 1  # descriptor continues in the next slot
RING_FLAG_MASK_INT: Final = 1  # receiver polls: the transmitter must not signal

# Field sizes on the wire.
SECRET_SIZE: Final = 24
NAME_SIZE: Final = 32
DISCONNECT_STRING_SIZE: Final = 96

# Sizes of the shared-memory structures.
DESC_SIZE: Final = 16

# Limits we advertise as a server, and accept as a client.
MAX_LOG2_RING_SIZE: Final = 14
MIN_LOG2_RING_SIZE: Final = 1
MAX_REGIONS: Final = 255
MAX_RINGS_PER_DIRECTION: Final = 255
MAX_BUFFER_SIZE: Final = 0xFFFF  # descriptors carry u32 lengths; we cap buffers at 64 KiB - 1
MIN_BUFFER_SIZE: Final = 64
# Largest single region a server maps (1 TiB): far beyond any real layout, small enough that a
# hostile ADD_REGION size never reaches mmap. The handshake refuses larger ones before its ACK.
MAX_REGION_SIZE: Final = 1 << 40

# Defaults shared by both configuration forms (config.py documents where they differ).
DEFAULT_BUFFER_SIZE: Final = 2048
DEFAULT_LOG2_RING_SIZE: Final = 10
DEFAULT_ID: Final = 0
DEFAULT_HANDSHAKE_TIMEOUT_S: Final = 5.0  # a connection must reach CONNECTED within this
# Bytes of regions one client may make a server map (issue 8: one client asked for 254 x 1 TiB).
# A copy-mode DPDK or libmemif layout is a few MiB; a zero-copy client exposes its memory segments.
DEFAULT_MAX_MAP_BYTES: Final = 1 << 36  # 64 GiB

ROLE_CLIENT: Final = 0
ROLE_SERVER: Final = 1
