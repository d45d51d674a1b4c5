"""What a JPEG says about itself before it is decoded.

A few hundred bytes of JPEG can declare a 10000x10000 picture; decoding it allocates
300 MB. The frame size is read from the start-of-frame header first, so an oversized
frame is refused without a single pixel being allocated.
"""

from __future__ import annotations

#: Start-of-frame markers (baseline, progressive, lossless...); C4, C8 and CC are not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` declared by the JPEG's first start-of-frame header; None when
    ``data`` is not a JPEG or the header is missing or cut off."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        if marker in _SOF:
            if i + 9 > n:
                return None
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return width, height
        i += 2 + length
    return None
