"""Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999): frames without 0x00 bytes.

The decoder walks the chain of code bytes (one step per zero in the data, or per 254 bytes),
so pure Python decodes IMU payloads at tens of MB/s.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def encode(data: bytes) -> bytes:
    """Encode ``data`` so that the result contains no 0x00 byte.

    Args:
        data: Any bytes.

    Returns:
        The COBS encoding, ``len(data) + 1 + len(data) // 254`` bytes at most.
    """
    out = bytearray()
    start = 0
    n = len(data)
    while True:
        zero = data.find(0, start, start + 254)
        if zero < 0:
            end = min(n, start + 254)
            block = data[start:end]
            if len(block) == 254:
                out.append(0xFF)
                out += block
                start = end
                if start == n:
                    # Canonical form: a full block that ends the data needs no empty block after it.
                    return bytes(out)
                continue
            out.append(len(block) + 1)
            out += block
            return bytes(out)
        out.append(zero - start + 1)
        out += data[start:zero]
        start = zero + 1


def decode(buf: bytes) -> bytes:
    """Decode one COBS-encoded frame (without its 0x00 delimiter).

    Args:
        buf: The encoded bytes.

    Returns:
        The original data.

    Raises:
        CobsError: A code byte is zero or points past the end of ``buf``.
    """
    n = len(buf)
    if n == 0:
        raise CobsError("empty COBS frame")
    positions = []
    push = positions.append
    full_block = False
    i = 0
    while i < n:
        code = buf[i]
        if code == 0:
            raise CobsError(f"zero code byte at offset {i}")
        if code == 0xFF:
            full_block = True
        push(i)
        i += code
    if i != n:
        raise CobsError(f"last COBS block runs {i - n} bytes past the end of the frame")
    out = bytearray(buf)
    if not full_block:
        # Common case: every code byte after the first stands for one zero.
        for pos in positions:
            out[pos] = 0
        del out[0]
        return bytes(out)
    deleted = [positions[0]]
    prev = positions[0]
    for pos in positions[1:]:
        if buf[prev] == 0xFF:
            deleted.append(pos)
        else:
            out[pos] = 0
        prev = pos
    for pos in reversed(deleted):
        del out[pos]
    return bytes(out)
