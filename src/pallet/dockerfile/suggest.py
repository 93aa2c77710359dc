"""Did-you-mean suggestions (BuildKit's util/suggest: Levenshtein distance below 3)."""

from __future__ import annotations

from collections.abc import Iterable

from pallet.dockerfile.gostrings import lower, upper

MAX_DISTANCE = 3


def levenshtein(a: str, b: str) -> int:
    """Edit distance with unit costs for insertion, deletion and substitution."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def search(value: str, options: Iterable[str], *, case_sensitive: bool) -> str | None:
    """The closest option (distance < 3), or None; an exact match means no suggestion.

    Options are tried in sorted order so that ties always resolve the same way (Go
    iterates a map, so BuildKit's choice between equally close options varies).
    """
    if len(value) > 256:  # nothing that long is close to an instruction or flag name
        return None
    needle = value if case_sensitive else lower(value)
    best: str | None = None
    best_distance = MAX_DISTANCE
    for option in sorted(options):
        candidate = option if case_sensitive else lower(option)
        if candidate == needle:
            return None
        distance = levenshtein(needle, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
    if best is None or case_sensitive:
        return best
    return _match_case(best, value)


def _match_case(value: str, original: str) -> str:
    if original == lower(original):
        return lower(value)
    if original == upper(original):
        return upper(value)
    return value
