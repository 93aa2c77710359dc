"""Go's ``time.ParseDuration``, for HEALTHCHECK's --interval and friends."""

from __future__ import annotations

import re

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # micro sign
    "\u03bcs": MICROSECOND,  # Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX = (1 << 63) - 1
_COMPONENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> int:
    """The duration ``text`` (e.g. ``1h30m``, ``1.5s``, ``-2ms``) in nanoseconds."""
    from fractions import Fraction  # ~10 ms to import; only HEALTHCHECK flags need it

    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f'time: invalid duration "{text}"')
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        m = _COMPONENT.match(s, pos)
        assert m is not None  # the pattern matches the empty string
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:
            raise DurationError(f'time: invalid duration "{text}"')
        if not unit:
            raise DurationError(f'time: missing unit in duration "{text}"')
        scale = _UNITS.get(unit)
        if scale is None:
            raise DurationError(f'time: unknown unit "{unit}" in duration "{text}"')
        if len(whole.lstrip("0")) > 20:  # more than int64 nanoseconds can hold
            raise DurationError(f'time: invalid duration "{text}"')
        value = Fraction(int(whole or "0"))
        if frac:
            frac = frac[:30]  # digits beyond a nanosecond's precision do not matter
            value += Fraction(int(frac), 10 ** len(frac))
        total += value * scale
        if total > _MAX + (1 if negative else 0):
            raise DurationError(f'time: invalid duration "{text}"')
        pos = m.end()
    nanos = int(total)
    return -nanos if negative else nanos


def format_duration(nanos: int) -> str:
    """A short human form (``30s``, ``1m30s``, ``250ms``) for messages."""
    if nanos % SECOND == 0:
        seconds = nanos // SECOND
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
        return out + (f"{secs}s" if secs or not out else "")
    if nanos % MILLISECOND == 0:
        return f"{nanos // MILLISECOND}ms"
    return f"{nanos}ns"
