"""CRC-32C, to check a payload's ``data_crc32c``: ``google-crc32c`` is not
among the client library's dependencies, and payloads are at most 64 KiB
(13 ms for the largest). No SDK here."""

from __future__ import annotations

from typing import Tuple

# --- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ------------------------

def _crc_table() -> Tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """The CRC-32C of ``data``, as Secret Manager's ``data_crc32c`` holds it."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
