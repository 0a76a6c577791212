"""Headless Chromium (Debian's ``chromium``) for the tests that open a page in a real browser, and a tiny PNG reader
(no imaging library in the test environment) to look at a screenshot's pixels."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

# No sandbox (tests may run as root, where Chromium's sandbox refuses to start); no network: every host name
# resolves nowhere, so a page that tried to fetch anything would show it missing rather than fetch it.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--no-first-run", "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="regops-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def dump_dom(page: Path) -> str:
    """The DOM after Chromium parsed and laid out the page, serialised."""
    proc = _run(["--dump-dom", page.resolve().as_uri()])
    if proc.returncode:
        raise AssertionError(f"chromium --dump-dom failed: {proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(page: Path, png: Path, width: int = 1000, height: int = 1400) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    proc = _run([f"--screenshot={png.resolve()}", f"--window-size={width},{height}", page.resolve().as_uri()])
    if proc.returncode or not png.exists():
        raise AssertionError(f"chromium --screenshot failed: {proc.stderr[-2000:]}")
    return png


def _unfilter(kind: int, line: bytearray, previous: bytearray, bpp: int) -> None:
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = previous[i]
        corner = previous[i - bpp] if i >= bpp else 0
        if kind == 1:
            line[i] = (line[i] + left) & 255
        elif kind == 2:
            line[i] = (line[i] + up) & 255
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 255
        elif kind == 4:
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255


def png_pixels(png: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and the RGB of every pixel of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color, _c, _f, interlace = header
    assert depth == 8 and color in (2, 6) and not interlace, header
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    previous, pixels = bytearray(stride), []
    for row in range(height):
        start = row * (stride + 1)
        line = bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(raw[start], line, previous, bpp)
        pixels += [tuple(line[i:i + 3]) for i in range(0, stride, bpp)]
        previous = line
    return width, height, pixels
