"""Durations and sizes printed the way the docker CLI prints them (go-units)."""

from __future__ import annotations

import datetime as _dt

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 3) -> str:
    """``4261`` -> ``4.26kB`` (decimal units, as ``docker images`` shows sizes)."""
    unit = 0
    while size >= 1000 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        unit += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """``7200`` -> ``2 hours``, with docker's roundings and thresholds."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours_f = seconds / 3600
    hours = int(hours_f + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(hours_f / 24 / 365)} years"


def parse_timestamp(text: str | None) -> _dt.datetime | None:
    """Parse an RFC 3339 timestamp as written in image configs (nanoseconds allowed)."""
    if not text:
        return None
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python keeps microseconds only: cut a longer fraction.
    if "." in value:
        head, rest = value.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(digits) :]
        value = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.UTC)
    return parsed


def format_timestamp(when: _dt.datetime) -> str:
    """RFC 3339 with nanosecond digits, UTC, as Docker writes ``created``."""
    utc = when.astimezone(_dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}000Z"


def since(when: _dt.datetime | None, now: _dt.datetime | None = None) -> str:
    if when is None:
        return "N/A"
    now = now or _dt.datetime.now(_dt.UTC)
    return human_duration(max(0.0, (now - when).total_seconds())) + " ago"


def parse_duration(text: str) -> float:
    """Go-style durations for filters (``24h``, ``1h30m``, ``90s``) in seconds."""
    import re

    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * units[u] for n, u in parts)
