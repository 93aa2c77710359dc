"""Access control from the config file: subjects x repository globs -> actions.

Default deny: an action is allowed only if some rule grants it. A glob's ``*`` matches
any characters including ``/`` (``team/*`` covers ``team/a/b``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pallet.registry.config import ACTIONS, AuthConfig


class AccessControl:
    def __init__(self, config: AuthConfig) -> None:
        self._config = config
        self._open = config.mode == "none"
        self._member_of: dict[str, set[str]] = {}
        for group, members in config.groups.items():
            for member in members:
                self._member_of.setdefault(member, set()).add(group)

    def _subjects(self, user: str | None) -> set[str]:
        if user is None:
            return {"anonymous"}
        return {user, "*"} | {f"group:{g}" for g in self._member_of.get(user, ())}

    def allowed_actions(self, user: str | None, repo: str) -> set[str]:
        if self._open:
            return set(ACTIONS)
        granted: set[str] = set()
        if self._config.anonymous_pull:
            granted.add("pull")
        subjects = self._subjects(user)
        for rule in self._config.access:
            if subjects.isdisjoint(rule.subjects):
                continue
            if any(fnmatchcase(repo, glob) for glob in rule.repositories):
                granted.update(rule.actions)
        return granted

    def allows(self, user: str | None, repo: str, action: str) -> bool:
        return action in self.allowed_actions(user, repo)
