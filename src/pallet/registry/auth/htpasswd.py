"""An htpasswd file of bcrypt hashes, as Apache's ``htpasswd -B`` and distribution use.

Checking a bcrypt hash costs ~100 ms on purpose, so successful checks are remembered (by a
hash of the password, never the password) until the file changes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import bcrypt

from pallet.errors import RegistryError

_USER = re.compile(r"[A-Za-z0-9._@-]{1,128}")
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def check_username(name: str) -> str:
    if not _USER.fullmatch(name):
        raise RegistryError(
            f"invalid user name {name!r}: use 1-128 letters, digits, '.', '_', '@' or '-'"
        )
    return name


class Htpasswd:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}
        self._verified: set[tuple[str, str, str]] = set()

    def _load(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._users, self._stamp = {}, None
            return self._users
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            users: dict[str, str] = {}
            for line in self.path.read_text().splitlines():
                name, sep, hashed = line.strip().partition(":")
                if sep and name and hashed.startswith(_BCRYPT_PREFIXES):
                    users[name] = hashed
            self._users, self._stamp = users, stamp
            self._verified.clear()
        return self._users

    def users(self) -> list[str]:
        return sorted(self._load())

    def known_good(self, user: str, password: str) -> bool:
        """True if these credentials were verified before (no bcrypt, no thread hop)."""
        hashed = self._load().get(user)
        if hashed is None:
            return False
        return (user, hashlib.sha256(password.encode()).hexdigest(), hashed) in self._verified

    def verify(self, user: str, password: str) -> bool:
        hashed = self._load().get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(password.encode()).hexdigest(), hashed)
        if key in self._verified:
            return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed.encode())
        except ValueError:
            return False
        if ok:
            self._verified.add(key)
        return bool(ok)

    def set(self, user: str, password: str) -> None:
        check_username(user)
        if not password:
            raise RegistryError(f"empty password for user {user!r}")
        users = dict(self._load())
        users[user] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
        self._save(users)

    def remove(self, user: str) -> None:
        users = dict(self._load())
        if users.pop(user, None) is None:
            raise RegistryError(f"no user {user!r} in {self.path}")
        self._save(users)

    def _save(self, users: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{name}:{hashed}\n" for name, hashed in sorted(users.items()))
        os.replace(temp, self.path)
        self._stamp = None
