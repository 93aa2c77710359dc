"""Dockerfile parser throughput: a 10,000-line file and 1 MB instructions.

Usage: .venv/bin/python bench/dockerfile_bench.py   (or bench/run.py dockerfile)

Each case is parsed several times; the best time counts. Times are CPU seconds of this
process (``time.process_time``): parsing is single-threaded, and CPU time stays honest
on a busy machine. Parsing is linear in the input, so the interesting number is MB/s
and that no case is far slower than the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pallet.dockerfile import dump, parse
from pallet.dockerfile.instructions import parse_stages

REPEAT = 3


def _ten_thousand_lines() -> bytes:
    block = [
        "FROM debian:bookworm AS stage{n}",
        "ARG VERSION=1.{n}",
        'ENV PATH=/opt/bin:$PATH LANG=C.UTF-8 NAME="stage {n}"',
        'LABEL org.opencontainers.image.title="s{n}" version=$VERSION',
        "COPY --chown=1000:1000 --chmod=644 --link src/{n} /app/{n}/",
        "RUN --mount=type=cache,target=/var/cache/apt \\",
        "    apt-get update && \\",
        "    apt-get install -y curl ca-certificates && \\",
        "    rm -rf /var/lib/apt/lists/*",
        "RUN <<EOF",
        "echo building {n}",
        "EOF",
        "# a comment",
        'HEALTHCHECK --interval=30s CMD ["curl", "-f", "http://localhost/"]',
        "WORKDIR /app",
        'CMD ["/app/run", "--stage", "{n}"]',
        "",
    ]
    lines: list[str] = []
    n = 0
    while len(lines) < 10_000:
        lines += [line.format(n=n) for line in block]
        n += 1
    return ("\n".join(lines[:10_000]) + "\n").encode()


def _one_mb_run() -> bytes:
    line = "    echo 'a fairly ordinary shell line of a long script' && \\\n"
    count = (1 << 20) // len(line) + 1
    return ("FROM a\nRUN set -e; \\\n" + line * count + "    true\n").encode()


def _one_mb_env() -> bytes:
    word = 'K{i}="quoted value {i}" '
    parts = []
    size = 0
    i = 0
    while size < 1 << 20:
        w = word.format(i=i)
        parts.append(w + ("\\\n" if i % 40 == 39 else ""))
        size += len(w)
        i += 1
    return ("FROM a\nENV " + "".join(parts) + "\n").encode()


def _one_mb_heredoc() -> bytes:
    body = "echo 'line of a heredoc script body, nothing special here'\n"
    count = (1 << 20) // len(body) + 1
    return ("FROM a\nRUN <<EOF bash\n" + body * count + "EOF\n").encode()


def _one_mb_heredoc_line() -> bytes:
    # the heredoc lexer has to walk the whole 1 MB logical line
    line = "    --opt=value \"quoted $VAR\" 'single' \\\n"
    count = (1 << 20) // len(line) + 1
    return ("FROM a\nRUN cat <<EOF \\\n" + line * count + "    done\nbody\nEOF\n").encode()


CASES: list[tuple[str, Callable[[], bytes]]] = [
    ("10,000-line Dockerfile", _ten_thousand_lines),
    ("1 MB RUN (continuations)", _one_mb_run),
    ("1 MB ENV (quoted words)", _one_mb_env),
    ("1 MB heredoc body", _one_mb_heredoc),
    ("1 MB RUN line with <<EOF", _one_mb_heredoc_line),
]


def _best(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEAT):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for name, make in CASES:
        data = make()
        df = parse(data)
        seconds = _best(lambda data=data: parse(data))  # type: ignore[misc]
        rows.append(
            {
                "name": f"parse: {name}",
                "bytes": len(data),
                "lines": data.count(b"\n"),
                "instructions": len(df.instructions),
                "cpu seconds": round(seconds, 4),
                "MB/s": round(len(data) / seconds / 1e6, 1),
            }
        )
    data = _ten_thousand_lines()
    df = parse(data)
    for label, fn in (
        ("dump", lambda: dump(df)),
        ("typed stages", lambda: parse_stages(df)),
    ):
        seconds = _best(fn)
        rows.append(
            {
                "name": f"{label}: 10,000-line Dockerfile",
                "bytes": len(data),
                "lines": data.count(b"\n"),
                "instructions": len(df.instructions),
                "cpu seconds": round(seconds, 4),
                "MB/s": round(len(data) / seconds / 1e6, 1),
            }
        )
    return rows


def _table(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))
    return "\n".join(out)


if __name__ == "__main__":
    print(_table(run()))
