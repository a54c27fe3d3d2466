"""Decoding the chunks of an untrusted Zarr store within bounds, codec by codec.

A compressed chunk says how large it will be only through its codec: a zstd frame
header, a blosc header, an lz4 length prefix; gzip, zlib, bz2 and lzma say nothing
until they are inflated. Each decoder here bounds its output before or while it
decodes: a declared size is checked before any allocation (zstd: the content size of
every frame, or the most its blocks can hold; blosc and lz4: their headers), and the
streaming codecs are inflated with a maximum output length, so that a chunk that would
inflate past the limit stops there. A corrupt chunk is a `DecodeError` with a one-line
reason; the caller names the file, the variable and the chunk.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib

#: Bytes-to-bytes codecs decoded here: name in the metadata (Zarr format 3 name or format 2
#: id) -> the decoder's family.
BYTES_CODECS = {
    "zstd": "zstd", "numcodecs.zstd": "zstd",
    "blosc": "blosc", "numcodecs.blosc": "blosc",
    "gzip": "gzip", "numcodecs.gzip": "gzip",
    "zlib": "zlib", "numcodecs.zlib": "zlib",
    "lz4": "lz4", "numcodecs.lz4": "lz4",
    "bz2": "bz2", "numcodecs.bz2": "bz2",
    "lzma": "lzma", "numcodecs.lzma": "lzma",
    "crc32c": "crc32c",
}  # fmt: skip

_ZSTD_MAGIC = 0xFD2FB528
_ZSTD_BLOCK_MAX = 128 * 2**10  # a compressed block regenerates at most 128 KiB (RFC 8878, 3.1.1.2.3)
_BLOSC_HEADER = 16
_LZMA_FORMATS = {None: lzma.FORMAT_AUTO, 0: lzma.FORMAT_AUTO, 1: lzma.FORMAT_XZ, 2: lzma.FORMAT_ALONE}


class DecodeError(Exception):
    """A chunk that cannot be decoded within the limit; the message is one line."""


def decode_chunk(data: bytes, codecs, limit: int, final: int | None = None) -> bytes:
    """Undo the bytes-to-bytes codecs of a chunk, last first, never producing more than the limits.

    Parameters
    ----------
    data : bytes
        The stored chunk.
    codecs : sequence of (str, dict)
        ``(family, configuration)`` in the order they were applied when writing
        (families: the values of `BYTES_CODECS`).
    limit : int
        Most bytes any intermediate step may produce (e.g. what a checksum codec hands
        to the decompressor).
    final : int, optional
        Most bytes the last step may produce (the chunk's size, where it is fixed);
        default `limit`.

    Returns
    -------
    bytes

    Raises
    ------
    DecodeError
        A declared or actual size over the limits, a corrupt or truncated stream, a
        failed checksum.
    """
    steps = list(codecs)[::-1]
    for k, (family, config) in enumerate(steps):
        bound = limit if k < len(steps) - 1 or final is None else final
        data = _DECODERS[family](bytes(data), config, bound)
        if len(data) > bound:  # a decoder that trusted a header: never hand on more than the limit
            raise DecodeError(f"{family} data decodes to {len(data)} bytes, more than the limit of {bound}")
    return data


def check_vlen_header(data: bytes, n_items: int) -> None:
    """Check a vlen-utf8 chunk (numcodecs' format: uint32 count, then length-prefixed items) before decoding.

    Parameters
    ----------
    data : bytes
        The decompressed chunk.
    n_items : int
        The items its chunk shape holds (edge chunks are stored at full size).

    Raises
    ------
    DecodeError
        The count is not the chunk's number of items, or the buffer is too short to hold them.
    """
    if len(data) < 4:
        raise DecodeError("a string chunk without its item count")
    count = int.from_bytes(data[:4], "little")
    if count != n_items:
        raise DecodeError(f"a string chunk declares {count} strings, its chunk shape holds {n_items}")
    if len(data) < 4 + 4 * count:
        raise DecodeError(f"a string chunk of {len(data)} bytes cannot hold {count} strings (truncated)")


# --------------------------------------------------------------------------- zstd


def zstd_bound(data: bytes) -> int:
    """Most bytes the zstd frames of `data` decode to, read from their frame and block headers (no decoding).

    Parameters
    ----------
    data : bytes
        One or more zstd frames (and skippable frames).

    The sum of the frame content sizes where every frame declares one (what a one-shot
    decoder allocates); else the sum over blocks of what each can regenerate (raw and RLE
    blocks: their size; compressed blocks: 128 KiB), which bounds a streaming decoder.

    Raises
    ------
    DecodeError
        Not a sequence of zstd frames (bad magic number, reserved bits, truncation), or
        frames that declare no content but carry some.
    """
    view = memoryview(data)
    pos, declared, blocks, unknown = 0, 0, 0, False
    while pos < len(view):
        magic = _uint(view, pos, 4)
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame
            pos += 8 + _uint(view, pos + 4, 4)
            continue
        if magic != _ZSTD_MAGIC:
            raise DecodeError(f"not zstd data (magic number 0x{magic:08x} at byte {pos})")
        descriptor = _uint(view, pos + 4, 1)
        if descriptor & 0x08:
            raise DecodeError("a zstd frame header with its reserved bit set")
        single = bool(descriptor & 0x20)
        pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 0x03]
        fcs_size = (1 if single else 0, 2, 4, 8)[descriptor >> 6]
        if fcs_size:
            declared += _uint(view, pos, fcs_size) + (256 if fcs_size == 2 else 0)
        unknown = unknown or not fcs_size
        pos, regenerated = _zstd_blocks(view, pos + fcs_size)
        blocks += regenerated
        pos += 4 if descriptor & 0x04 else 0  # the content checksum
    if pos > len(view):
        raise DecodeError("a truncated zstd frame")
    if not unknown and declared == 0 and blocks:
        raise DecodeError("zstd frames that declare no content but carry some")
    return blocks if unknown else declared


def _zstd_blocks(view: memoryview, pos: int) -> tuple[int, int]:
    """Walk a frame's blocks: (position after the last block, most bytes they regenerate)."""
    total = 0
    while True:
        header = _uint(view, pos, 3)
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise DecodeError("a zstd block of the reserved type")
        total += size if kind in (0, 1) else _ZSTD_BLOCK_MAX
        pos += 3 + (1 if kind == 1 else size)
        if last:
            return pos, total


def _uint(view: memoryview, pos: int, size: int) -> int:
    """The little-endian unsigned int of `size` bytes at `pos`; DecodeError past the end."""
    if pos + size > len(view):
        raise DecodeError("a truncated zstd frame")
    return int.from_bytes(view[pos:pos + size], "little")


def _zstd(data: bytes, config, limit: int) -> bytes:
    bound = zstd_bound(data)
    if bound > limit:
        raise DecodeError(f"zstd frames that declare {bound} bytes, more than the limit of {limit}")
    if bound == 0:
        return b""
    from numcodecs import zstd

    return bytes(zstd.decompress(data))


# --------------------------------------------------------------------------- headers: blosc, lz4


def _blosc(data: bytes, config, limit: int) -> bytes:
    if len(data) < _BLOSC_HEADER:
        raise DecodeError("a blosc chunk shorter than its 16-byte header")
    nbytes, blocksize, cbytes = struct.unpack_from("<III", data, 4)
    if cbytes != len(data):
        raise DecodeError(f"a blosc header that declares {cbytes} compressed bytes for a chunk of {len(data)}")
    if nbytes > limit:
        raise DecodeError(f"a blosc header that declares {nbytes} bytes, more than the limit of {limit}")
    if nbytes and not 0 < blocksize <= max(nbytes, 1):
        raise DecodeError(f"a blosc header with block size {blocksize} for {nbytes} bytes")
    if nbytes == 0:
        return b""
    from numcodecs import blosc

    return bytes(blosc.decompress(data))


def _lz4(data: bytes, config, limit: int) -> bytes:
    if len(data) < 4:
        raise DecodeError("an lz4 chunk shorter than its 4-byte length")
    size = int.from_bytes(data[:4], "little")
    if size > limit:
        raise DecodeError(f"an lz4 chunk that declares {size} bytes, more than the limit of {limit}")
    from numcodecs import lz4

    return bytes(lz4.decompress(data))


# --------------------------------------------------------------------------- streams: gzip, zlib, bz2, lzma


def inflate(data: bytes, make, limit: int, name: str, *, members: bool) -> bytes:
    """Decompress with a maximum output length.

    Parameters
    ----------
    data : bytes
    make : callable
        Returns a fresh decompressor (``zlib.decompressobj(...)``, ``bz2.BZ2Decompressor``,
        ``lzma.LZMADecompressor``): ``decompress(data, max_length)``, ``eof``, ``unused_data``.
    limit : int
        Most bytes produced; one more is an error.
    name : str
        The codec, for messages.
    members : bool
        Decode concatenated streams one after another (gzip members, bz2 streams),
        ignoring trailing NUL padding, as the standard library does.

    Returns
    -------
    bytes

    Raises
    ------
    DecodeError
        More than `limit` bytes, a truncated or corrupt stream, or trailing bytes.
    """
    out, total = [], 0
    while True:
        decompressor = make()
        piece = decompressor.decompress(data, limit - total + 1)
        total += len(piece)
        if total > limit:
            raise DecodeError(f"{name} data that inflates to more than the limit of {limit} bytes")
        out.append(piece)
        if not decompressor.eof:
            raise DecodeError(f"{name} data that ends before its stream does (truncated or corrupt)")
        data = decompressor.unused_data
        if not data or (members and not data.strip(b"\0")):
            return b"".join(out)
        if not members:
            raise DecodeError(f"{len(data)} bytes after the end of the {name} stream")


def _gzip(data: bytes, config, limit: int) -> bytes:
    return inflate(data, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), limit, "gzip", members=True)


def _zlib(data: bytes, config, limit: int) -> bytes:
    return inflate(data, lambda: zlib.decompressobj(zlib.MAX_WBITS), limit, "zlib", members=False)


def _bz2(data: bytes, config, limit: int) -> bytes:
    return inflate(data, bz2.BZ2Decompressor, limit, "bz2", members=True)


def _lzma(data: bytes, config, limit: int) -> bytes:
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt not in _LZMA_FORMATS:
        raise DecodeError(f"an lzma codec of format {fmt!r} (cse reads the xz and alone formats)")
    memlimit = max(limit, 2**24)  # the dictionary an lzma header asks for is memory too
    return inflate(data, lambda: lzma.LZMADecompressor(_LZMA_FORMATS[fmt], memlimit=memlimit), limit, "lzma",
                   members=True)


def _crc32c(data: bytes, config, limit: int) -> bytes:
    if len(data) < 4:
        raise DecodeError("a chunk shorter than its crc32c checksum")
    import google_crc32c

    if struct.pack("<I", google_crc32c.value(data[:-4])) != data[-4:]:
        raise DecodeError("a chunk whose crc32c checksum does not match its bytes")
    return data[:-4]


_DECODERS = {"zstd": _zstd, "blosc": _blosc, "gzip": _gzip, "zlib": _zlib, "lz4": _lz4, "bz2": _bz2, "lzma": _lzma,
             "crc32c": _crc32c}
