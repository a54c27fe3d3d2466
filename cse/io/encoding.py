"""Decoding input files: byte-order marks, and error messages that suggest only what can be true.

Rules (the README's input rules):

- A byte-order mark (BOM) decides between the UTF encodings: a file that starts with the
  UTF-8, UTF-16 (LE/BE) or UTF-32 (LE/BE) mark is decoded as that encoding when the
  requested encoding is any UTF encoding (``utf-8`` is the default), and the mark is
  dropped. No valid UTF-8 file starts with a UTF-16 or UTF-32 mark, so this never changes
  how a UTF-8 file is read. With a non-UTF encoding (``cp1252``, ``latin-1`` ...) a BOM is
  an error that names the mark and the ``--encoding`` to use.
- Undecodable bytes are an error naming the 1-based line and the byte. It suggests
  another encoding only when the whole file decodes with it: ``cp1252`` for a file that
  is not UTF-8 but is valid cp1252 and has no NUL byte; ``utf-16-le``/``utf-16-be`` for a
  file without a BOM whose every other byte is NUL; ``utf-8`` for a file that is.
- A text file has no NUL characters: a decoded NUL is an error (naming the line, and
  UTF-16 when the bytes are UTF-16 without a BOM). JSON Lines may still carry NUL inside
  strings as the escape ``\\u0000``.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import CSEInputError

#: (mark, name in messages, codec that reads it). UTF-32 LE first: its mark starts with UTF-16 LE's.
BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32 LE", "utf-32"),
    (codecs.BOM_UTF32_BE, "UTF-32 BE", "utf-32"),
    (codecs.BOM_UTF8, "UTF-8", "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "UTF-16 LE", "utf-16"),
    (codecs.BOM_UTF16_BE, "UTF-16 BE", "utf-16"),
)


def is_utf8(text: str) -> bool:
    """True if `text` can be written as UTF-8 (it holds no unpaired surrogate such as ``'\\ud800'``).

    Parameters
    ----------
    text : str

    Returns
    -------
    bool
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_text(text: str) -> str:
    """`text` made writable as UTF-8: surrogate escapes (bytes a non-UTF-8 file-system encoding could not
    decode, as in ``sys.argv`` and paths under ``PYTHONUTF8=0`` and a C locale) decoded as UTF-8, else
    shown as ``\\xNN``.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        `text` itself when it is already valid.
    """
    if is_utf8(text):
        return text
    raw = text.encode("utf-8", "surrogateescape") if _escapes_only(text) else text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def _escapes_only(text: str) -> bool:
    """Whether every surrogate of `text` is a surrogate escape (U+DC80..U+DCFF) of one undecodable byte."""
    return all(not "\ud800" <= c <= "\udfff" or "\udc80" <= c <= "\udcff" for c in text)


def _is_utf(codec_name: str) -> bool:
    return codec_name.startswith(("utf-8", "utf-16", "utf-32"))


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _utf16_without_bom(raw: bytes) -> str | None:
    """``'utf-16-le'`` or ``'utf-16-be'`` if `raw` looks like BOM-less UTF-16 of mostly ASCII text."""
    if len(raw) < 2 or len(raw) % 2:
        return None
    for encoding, zeros in (("utf-16-le", raw[1::2]), ("utf-16-be", raw[0::2])):
        if zeros.count(0) >= 0.5 * len(zeros) and _decodes(raw, encoding) and "\x00" not in raw.decode(encoding):
            return encoding
    return None


def _suggestion(raw: bytes, codec_name: str) -> str | None:
    """An encoding that decodes the whole file and is plausible, or None."""
    utf16 = _utf16_without_bom(raw)
    if utf16 is not None:
        return utf16
    if b"\x00" in raw:
        return None
    if codec_name.startswith("utf-8"):
        return "cp1252" if _decodes(raw, "cp1252") else None
    return "utf-8" if _decodes(raw, "utf-8") else None


def _line_of(raw: bytes, stop: int, encoding: str) -> int:
    return raw[:stop].decode(encoding, errors="replace").count("\n") + 1


def decode_text(raw: bytes, path, encoding: str = "utf-8") -> str:
    """Decode the bytes of an input file (see the module's rules).

    Parameters
    ----------
    raw : bytes
        The whole file.
    path : str or Path
        Named in messages.
    encoding : str
        The requested encoding (any codec name Python knows).

    Returns
    -------
    str
        The text, without a byte-order mark; no NUL characters.

    Raises
    ------
    CSEInputError
        Unknown codec, a BOM that contradicts a non-UTF encoding, undecodable bytes
        (naming the line, the byte and, only when it decodes the file, an encoding to
        try), or a NUL character.
    """
    path = Path(path)
    try:
        codec_name = codecs.lookup(encoding).name
    except (LookupError, TypeError, ValueError):
        raise CSEInputError(f"Invalid value for 'encoding': unknown codec {encoding!r}") from None
    mark = next(((bom, label, reader) for bom, label, reader in BOMS if raw.startswith(bom)), None)
    if mark is not None:
        bom, label, reader = mark
        if not _is_utf(codec_name):
            use = "utf-8" if reader == "utf-8-sig" else reader
            raise CSEInputError(f"{path}: the file starts with a {label} byte-order mark, so it is not "
                                f"{encoding}: use encoding={use!r}")
        encoding, codec_name = reader, reader
    try:
        content = raw.decode(codec_name)
    except UnicodeDecodeError as exc:
        line = _line_of(raw, exc.start, codec_name)
        other = None if mark is not None else _suggestion(raw, codec_name)
        hint = f"try encoding={other!r}" if other else "give the file's encoding with encoding=NAME"
        raise CSEInputError(f"{path}: line {line} is not valid {encoding} (byte 0x{raw[exc.start]:02x}); {hint}") from None
    content = content.removeprefix("\ufeff")
    nul = content.find("\x00")
    if nul >= 0:
        line = content.count("\n", 0, nul) + 1
        utf16 = None if codec_name.startswith(("utf-16", "utf-32")) else _utf16_without_bom(raw)
        hint = (f"the file looks like {utf16.upper().replace('-LE', ' LE').replace('-BE', ' BE')} without a "
                f"byte-order mark: use encoding={utf16!r}") if utf16 else "a text file has none: is it a binary file?"
        raise CSEInputError(f"{path}: line {line} holds a NUL character; {hint}")
    return content
