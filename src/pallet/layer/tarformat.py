"""Tar headers as Docker and BuildKit write them (Go's archive/tar with FormatPAX).

A header is plain USTAR when every field fits (a long ASCII name may use the USTAR
prefix field); otherwise a PAX extended header (``x``) named ``dir/PaxHeaders.0/base``
carries the fields that do not fit and every ``SCHILY.xattr.*`` record, sorted by key.
Numbers are zero-padded octal with a trailing NUL; uname/gname stay empty (numeric ids
only); the checksum is 6 octal digits, NUL, space. This module is pure: no I/O.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass, field

from pallet.errors import LayerError

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
END_OF_ARCHIVE = bytes(2 * BLOCK)

REG = b"0"
AREG = b"\x00"  # pre-POSIX regular file
LNK = b"1"
SYM = b"2"
CHR = b"3"
BLK = b"4"
DIR = b"5"
FIFO = b"6"
CONT = b"7"  # contiguous file: a regular file
PAX_LOCAL = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
GNU_SPARSE = b"S"

XATTR_PREFIX = "SCHILY.xattr."

_NAME, _PREFIX = 100, 155


@dataclass(frozen=True)
class Entry:
    """One tar member's metadata. ``name`` is relative, with a trailing '/' for dirs."""

    name: str
    type: bytes
    mode: int = 0
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = field(default=())


_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def fsencode(name: str) -> bytes:
    """``os.fsencode`` for a str, as one C call (it runs for every entry)."""
    return name.encode(_FS_ENCODING, _FS_ERRORS)


def padding(size: int) -> int:
    """Bytes of zero padding after ``size`` bytes of member data."""
    return -size % BLOCK


# -- writing ---------------------------------------------------------------------------


def _fits_octal(value: int, width: int) -> bool:
    return 0 <= value < 1 << (3 * (width - 1))


def _octal(value: int, width: int) -> bytes:
    if not _fits_octal(value, width):
        value = 0  # the real value is in a PAX record (Go writes zero as well)
    return b"%0*o\x00" % (width - 1, value)


def _ascii(data: bytes) -> bytes:
    return bytes(b for b in data if b < 0x80)


def _field(data: bytes, width: int) -> bytes:
    return data[:width].ljust(width, b"\x00")


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for a long ASCII path that fits USTAR's two fields, as Go splits it."""
    length = len(name)
    if length <= _NAME or not name.isascii():
        return None
    if length > _PREFIX + 1:
        length = _PREFIX + 1
    elif name[length - 1 : length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    suffix_len = len(name) - i - 1
    if i <= 0 or suffix_len > _NAME or suffix_len == 0 or i > _PREFIX:
        return None
    return name[:i], name[i + 1 :]


def pax_record(key: bytes, value: bytes) -> bytes:
    """``"%d %s=%s\\n"`` where the length counts the whole record, itself included."""
    body = b" " + key + b"=" + value + b"\n"
    size = len(body) + 1
    while len(str(size)) + len(body) != size:
        size = len(str(size)) + len(body)
    return str(size).encode() + body


# name mode uid gid size mtime chksum type linkname magic+version uname gname
# devmajor devminor prefix pad; "s" fields are NUL-padded (and cut) to their width
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12s")
_MAGIC = b"ustar\x0000"
_BLANK_CHECKSUM = b" " * 8


def _checksum(block: bytes) -> int:
    """The sum of the block's bytes (with the checksum field blank)."""
    if block.isascii():
        # every byte < 128: the sum is < 512 * 128 - 511 < 65521, so Adler-32's low half
        # (1 + sum, mod 65521) is exact; a C call instead of a 512-step Python sum
        return (zlib.adler32(block) & 0xFFFF) - 1
    return sum(block)


def _raw_header(
    name: bytes,
    typeflag: bytes,
    *,
    mode: bytes,
    uid: bytes,
    gid: bytes,
    size: bytes,
    mtime: bytes,
    linkname: bytes = b"",
    devmajor: bytes = b"",
    devminor: bytes = b"",
    prefix: bytes = b"",
) -> bytes:
    block = _USTAR.pack(
        name,
        mode,
        uid,
        gid,
        size,
        mtime,
        _BLANK_CHECKSUM,
        typeflag,
        linkname,
        _MAGIC,
        b"",  # uname
        b"",  # gname
        devmajor,
        devminor,
        prefix,
        b"",
    )
    return b"%s%06o\x00 %s" % (block[:148], _checksum(block), block[156:])


_MAX_8 = 1 << 21  # octal fields of width 8 hold 7 digits
_MAX_12 = 1 << 33


def encode_header(entry: Entry) -> bytes:
    """The header block(s) for ``entry``: an optional PAX header, then the USTAR block."""
    name = fsencode(entry.name)
    link = fsencode(entry.linkname) if entry.linkname else b""
    if (
        # the common case, one plain USTAR block: checked first, it skips the PAX logic
        len(name) <= _NAME
        and len(link) <= _NAME
        and name.isascii()
        and link.isascii()
        and not entry.xattrs
        and 0 <= entry.uid < _MAX_8
        and 0 <= entry.gid < _MAX_8
        and 0 <= entry.size < _MAX_12
        and 0 <= entry.mtime < _MAX_12
        and 0 <= entry.devmajor < _MAX_8
        and 0 <= entry.devminor < _MAX_8
    ):
        return _raw_header(
            name,
            entry.type,
            mode=_octal(entry.mode, 8),
            uid=b"%07o\x00" % entry.uid,
            gid=b"%07o\x00" % entry.gid,
            size=b"%011o\x00" % entry.size,
            mtime=b"%011o\x00" % entry.mtime,
            linkname=link,
            devmajor=b"%07o\x00" % entry.devmajor,
            devminor=b"%07o\x00" % entry.devminor,
        )
    pax: dict[bytes, bytes] = {}
    ustar_ok = True
    split: tuple[bytes, bytes] | None = None
    if len(name) > _NAME or not name.isascii():
        pax[b"path"] = name
        split = _split_ustar(name)
        ustar_ok = split is not None
    if len(link) > _NAME or not link.isascii():
        pax[b"linkpath"] = link
        ustar_ok = False
    for key, value, width in (
        (b"uid", entry.uid, 8),
        (b"gid", entry.gid, 8),
        (b"size", entry.size, 12),
        (b"mtime", entry.mtime, 12),
    ):
        if not _fits_octal(value, width):
            pax[key] = str(value).encode()
            ustar_ok = False
    for dev in (entry.devmajor, entry.devminor):
        if not _fits_octal(dev, 8):
            raise LayerError(f"{entry.name}: device number {dev} does not fit a tar header")
    for xname, xvalue in entry.xattrs:
        pax[(XATTR_PREFIX + xname).encode("utf-8", "surrogateescape")] = xvalue
        ustar_ok = False

    numbers = {
        "mode": _octal(entry.mode, 8),
        "uid": _octal(entry.uid, 8),
        "gid": _octal(entry.gid, 8),
        "size": _octal(entry.size, 12),
        "mtime": _octal(entry.mtime, 12),
    }
    devs = {"devmajor": _octal(entry.devmajor, 8), "devminor": _octal(entry.devminor, 8)}
    if ustar_ok:
        prefix, short = split if split is not None else (b"", name)
        return _raw_header(short, entry.type, linkname=link, prefix=prefix, **numbers, **devs)

    data = b"".join(pax_record(k, pax[k]) for k in sorted(pax))
    # Go names it path.Join(dir, "PaxHeaders.0", base)
    slash = name.rfind(b"/")
    parts = (name[: slash + 1].rstrip(b"/"), b"PaxHeaders.0", name[slash + 1 :])
    pax_name = b"/".join(p for p in parts if p)
    pax_name = _ascii(pax_name)[:_NAME].rstrip(b"/")
    zero = _octal(0, 8)
    pax_header = _raw_header(
        pax_name,
        PAX_LOCAL,
        mode=zero,
        uid=zero,
        gid=zero,
        size=_octal(len(data), 12),
        mtime=_octal(0, 12),
    )
    main = _raw_header(_ascii(name), entry.type, linkname=_ascii(link), **numbers, **devs)
    return pax_header + data + bytes(padding(len(data))) + main


# -- reading ---------------------------------------------------------------------------


def parse_number(raw: bytes, what: str) -> int:
    """An octal (or GNU base-256) numeric field."""
    if raw and raw[0] & 0x80:
        # base-256: big-endian two's complement, first byte's top bit is the marker
        value = int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
        if raw[0] & 0x40:
            value -= 1 << (8 * len(raw) - 1)
        return value
    text = raw.split(b"\x00", 1)[0].strip(b" \x00")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise LayerError(f"invalid {what} field {raw!r} in tar header") from None


def checksum_ok(block: bytes) -> bool:
    stored = parse_number(block[148:156], "checksum")
    blanked = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(blanked)
    signed = sum(b - 256 if b > 127 else b for b in blanked)
    return stored in (unsigned, signed)


@dataclass(frozen=True)
class RawHeader:
    """The fields of one 512-byte header block, before PAX/GNU overrides."""

    name: bytes
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: bytes
    devmajor: int
    devminor: int


def _cstr(raw: bytes) -> bytes:
    return raw.split(b"\x00", 1)[0]


def decode_header(block: bytes) -> RawHeader:
    if not checksum_ok(block):
        raise LayerError("invalid tar header (bad checksum)")
    magic = block[257:265]
    name = _cstr(block[0:100])
    if magic[:6] == b"ustar\x00":  # POSIX: the prefix field extends the name
        prefix = _cstr(block[345:500])
        if prefix:
            name = prefix + b"/" + name
    return RawHeader(
        name=name,
        type=block[156:157],
        mode=parse_number(block[100:108], "mode"),
        uid=parse_number(block[108:116], "uid"),
        gid=parse_number(block[116:124], "gid"),
        size=parse_number(block[124:136], "size"),
        mtime=parse_number(block[136:148], "mtime"),
        linkname=_cstr(block[157:257]),
        devmajor=parse_number(block[329:337], "devmajor") if magic[:5] == b"ustar" else 0,
        devminor=parse_number(block[337:345], "devminor") if magic[:5] == b"ustar" else 0,
    )


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """The records of a PAX extended header; later records override earlier ones."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            if data.count(0, pos) != len(data) - pos:
                raise LayerError("malformed PAX header (NUL inside the records)")
            break  # NUL padding some writers leave
        space = data.find(b" ", pos)
        if space < 0:
            raise LayerError("malformed PAX header (no record length)")
        try:
            length = int(data[pos:space].decode("ascii"), 10)
        except ValueError:
            raise LayerError("malformed PAX header (bad record length)") from None
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1 : end] != b"\n":
            raise LayerError("malformed PAX header (record length out of range)")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key:
            raise LayerError("malformed PAX header (record without key)")
        records[key] = value
        pos = end
    return records
