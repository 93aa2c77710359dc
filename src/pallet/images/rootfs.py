"""Root filesystems for base images made without a registry: busybox-static and debootstrap."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from pallet.errors import InvalidArgument, PalletError

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The accounts of the upstream busybox image, so USER names in Dockerfiles resolve alike.
_PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
_GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""
_SHADOW = "".join(
    f"{line.split(':', 1)[0]}:*:10933:0:99999:7:::\n" for line in _PASSWD.splitlines()
)


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file() and is_static_elf(path):
            return path
    raise PalletError(
        "no statically linked busybox found (looked in "
        + ", ".join(BUSYBOX_CANDIDATES)
        + "); install the Debian package busybox-static"
    )


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP)."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 64 or ident[:4] != b"\x7fELF":
            return False
        is64 = ident[4] == 2
        endian = "<" if ident[5] == 1 else ">"
        if is64:
            phoff, phentsize, phnum = (
                struct.unpack_from(endian + "Q", ident, 32)[0],
                *struct.unpack_from(endian + "HH", ident, 54),
            )
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from(endian + "I", ident, 28)[0],
                *struct.unpack_from(endian + "HH", ident, 42),
            )
        if phnum > 256 or phentsize < 4:
            return False
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    for i in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: dynamically linked
            return False
    return True


def busybox_applets(busybox: Path) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise PalletError(f"{busybox} --list failed: {out.stderr.strip() or out.returncode}")
    return sorted({name for name in out.stdout.split() if name and "/" not in name})


def make_busybox_rootfs(dest: Path, busybox: Path | None = None) -> None:
    """Lay out a busybox root filesystem in the empty directory ``dest``.

    Every applet is a hard link to /bin/busybox, as in the upstream busybox image, so the
    layer holds one copy of the binary.
    """
    busybox = busybox or find_busybox()
    for d, mode in (
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("etc/network", 0o755),
        ("home", 0o755),
        ("proc", 0o755),
        ("root", 0o700),
        ("sys", 0o755),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
        ("var/spool", 0o755),
        ("var/spool/mail", 0o755),
        ("var/www", 0o755),
    ):
        p = dest / d
        p.mkdir(exist_ok=True)
        os.chmod(p, mode)
    target = dest / "bin" / "busybox"
    shutil.copyfile(busybox, target)
    os.chmod(target, 0o755)
    for applet in busybox_applets(busybox):
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            os.link(target, link)
    for name, text, mode in (
        ("passwd", _PASSWD, 0o644),
        ("group", _GROUP, 0o644),
        ("shadow", _SHADOW, 0o640),
        ("hostname", "localhost\n", 0o644),
        ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", 0o644),
    ):
        f = dest / "etc" / name
        f.write_text(text)
        os.chmod(f, mode)
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(dest):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), 0, 0)
        os.lchown(dest, 0, 0)


def make_debian_rootfs(dest: Path, suite: str, mirror: str | None = None) -> None:
    """Run ``debootstrap --variant=minbase`` into ``dest`` (needs root and a reachable mirror)."""
    if not suite.replace("-", "").isalnum():
        raise InvalidArgument(f"invalid Debian suite {suite!r}")
    if shutil.which("debootstrap") is None:
        raise PalletError("debootstrap is not installed (Debian package debootstrap)")
    if os.geteuid() != 0:
        raise PalletError(
            "pallet bootstrap debian needs root (debootstrap creates devices and chowns)"
        )
    cmd = ["debootstrap", "--variant=minbase", suite, str(dest)]
    if mirror:
        cmd.append(mirror)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise PalletError(
            f"debootstrap {suite} failed (exit {proc.returncode}): {' / '.join(tail)}"
        )
    # Leave nothing host-specific or cached in the image.
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        p = dest / leftover
        if p.is_dir():
            for child in p.iterdir():
                if child.is_file():
                    child.unlink()
