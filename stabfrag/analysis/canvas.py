"""A small numpy raster for the report's PNG: markers, rectangles, text in a 5x7 bitmap font,
and PNG encoding. No plotting or imaging library: the PNG is made wherever stabfrag runs."""

from __future__ import annotations

import struct
import zlib

import numpy as np

# 5x7 glyphs, one string of seven 5-bit rows each (1 = ink). Lower case prints as upper.
_GLYPHS = {
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 10001 11111 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    " ": "00000 00000 00000 00000 00000 00000 00000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "%": "11000 11001 00010 00100 01000 10011 00011",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    "/": "00000 00001 00010 00100 01000 10000 00000",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    "_": "00000 00000 00000 00000 00000 00000 11111",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    "?": "01110 10001 00001 00010 00100 00000 00100",
}
_ORDER = "".join(_GLYPHS)
_FONT = np.array(
    [[[c == "1" for c in row] for row in _GLYPHS[ch].split()] for ch in _ORDER], dtype=bool
)  # (glyphs, 7, 5)
GLYPH_W, GLYPH_H = 6, 7  # advance per character (5 + 1 space), height


def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """The ink of `text` as a boolean (7 * scale, 6 * len * scale) mask; unknown characters
    print as '?'."""
    index = np.array(
        [_ORDER.find(ch) if ch in _GLYPHS else _ORDER.find("?") for ch in text.upper()]
    )
    if index.size == 0:
        return np.zeros((GLYPH_H * scale, 0), dtype=bool)
    glyphs = np.pad(_FONT[index], ((0, 0), (0, 0), (0, 1)))  # one column of space each
    mask = glyphs.transpose(1, 0, 2).reshape(GLYPH_H, -1)
    return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def text_width(text: str, scale: int = 1) -> int:
    return len(text) * GLYPH_W * scale


def draw_text(
    canvas: np.ndarray,
    x: int,
    y: int,
    text: str,
    colour: tuple[int, int, int] = (30, 30, 30),
    scale: int = 1,
    *,
    vertical: bool = False,
) -> None:
    """Ink `text` with its top-left corner at (x, y) (read bottom to top when vertical),
    clipped to the canvas."""
    mask = text_mask(text, scale)
    if vertical:
        mask = np.rot90(mask)
    ys, xs = np.nonzero(mask)
    ys, xs = ys + y, xs + x
    ok = (ys >= 0) & (ys < canvas.shape[0]) & (xs >= 0) & (xs < canvas.shape[1])
    canvas[ys[ok], xs[ok]] = colour


def fill_rect(
    canvas: np.ndarray, x0: int, y0: int, x1: int, y1: int, colour: np.ndarray | tuple[int, ...]
) -> None:
    """Fill [x0, x1) x [y0, y1), clipped; `colour` may be one colour or one per row."""
    h, w = canvas.shape[:2]
    x0, x1, y0, y1 = max(x0, 0), min(x1, w), max(y0, 0), min(y1, h)
    if x0 < x1 and y0 < y1:
        c = np.asarray(colour, dtype=np.uint8)
        canvas[y0:y1, x0:x1] = c[:, None, :] if c.ndim == 2 else c


def markers(canvas: np.ndarray, points: np.ndarray, colours: np.ndarray, sizes: np.ndarray) -> None:
    """Square markers (all at once, by broadcasting); large ones drawn last, on top."""
    height, width = canvas.shape[:2]
    order = np.argsort(sizes, kind="stable")
    for size in np.unique(sizes):  # one pass per marker size, not per point
        sel = order[sizes[order] == size]
        off = np.arange(-size, size + 1)
        ys = points[sel, 1].round().astype(int)[:, None, None] + off[None, :, None]
        xs = points[sel, 0].round().astype(int)[:, None, None] + off[None, None, :]
        ys, xs = np.broadcast_arrays(ys, xs)
        cols = np.broadcast_to(colours[sel][:, None, None, :], (*ys.shape, 3))
        ok = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        canvas[ys[ok], xs[ok]] = cols[ok]


def png_bytes(canvas: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 image as PNG."""
    h, w, _ = canvas.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), canvas.reshape(h, w * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack("!I", len(data))
            + kind
            + data
            + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack("!IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )
