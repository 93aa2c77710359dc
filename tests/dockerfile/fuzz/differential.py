"""Differential fuzzing: pallet's parser against BuildKit's own, on random Dockerfiles.

Needs the ``bkdump`` helper built from a BuildKit checkout (see README.md); it is not
part of the test suite. For every generated input both parsers must agree on success
or failure, and on success on the dump (byte for byte), the escape token, the number
of warnings, and each instruction's lines, logical line and heredocs.

    BKDUMP=/path/to/bkdump DIFF_SECONDS=300 .venv/bin/python tests/dockerfile/fuzz/differential.py
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pallet.dockerfile import DockerfileError, dump, parse

KEYWORDS = [
    "FROM", "RUN", "run", "COPY", "ADD", "ENV", "LABEL", "ARG", "CMD", "ENTRYPOINT",
    "SHELL", "HEALTHCHECK", "ONBUILD", "ONBUILD RUN", "ONBUILD COPY", "VOLUME", "EXPOSE",
    "USER", "WORKDIR", "MAINTAINER", "STOPSIGNAL", "FOO", "",
]  # fmt: skip
TOKENS = [
    " ", "  ", "\t", "\\", "`", "'", '"', "[", "]", ",", '"a"', "=", "a", "b=c", "--",
    "--x", "--x=y", '--m="a b"', "<<", "<<-", "EOF", "<<EOF", "<<'EOF'", '<<"E"', "3<<X",
    "$", "${", "}", "${A:-b}", "${A/x/y}", "$A", "#", "\u00a0", "\u0085", "\u2028",
    "\u3000", "é", "☃", "\x00", "\x7f", "\x1c", "\r", "NONE", "CMD", "AS", "\\u0041",
    "\\ud800", "1", "1e999", "true", "null", "{}", ":", "-",
]  # fmt: skip
RAW_BYTES = [b"\xff", b"\xc3", b"\xa0", b"\xc2\xa0", b"\xe2\x80", b"\xef\xbb\xbf", b"\xed\xa0\x80"]
DIRECTIVES = ["# escape=`", "# escape=\\", "#syntax=x", " # Escape = ` ", "# check=a", "# escape=x"]
BODY_LINES = ["EOF", "X", "E", "\tEOF", "", "# c", "  ", "EOF\r"]


SEEDS = [p.read_bytes() for p in sorted((Path(__file__).parent / "seeds").glob("*.Dockerfile"))]


def mutate(rnd: random.Random) -> bytes:
    """A seed file with a few byte- and token-level mutations."""
    data = bytearray(rnd.choice(SEEDS))
    for _ in range(rnd.randint(0, 10)):
        at = rnd.randint(0, len(data))
        kind = rnd.randrange(4)
        if kind == 0:
            data[at:at] = rnd.choice(TOKENS).encode()
        elif kind == 1:
            data[at:at] = rnd.choice(RAW_BYTES) + rnd.choice([b"", b"\\\n", b"\n"])
        elif kind == 2:
            del data[at : at + rnd.randint(1, 16)]
        else:
            data[at:at] = data[at : at + rnd.randint(1, 64)]
    return bytes(data)


def generate(rnd: random.Random) -> bytes:
    if rnd.random() < 0.5:
        return mutate(rnd)
    out = bytearray()
    if rnd.random() < 0.2:
        out += rnd.choice(DIRECTIVES).encode() + b"\n"
    for _ in range(rnd.randint(1, 8)):
        out += rnd.choice(KEYWORDS).encode()
        sep = b" " if rnd.random() < 0.5 else b""
        for _ in range(rnd.randint(0, 8)):
            piece = rnd.choice(RAW_BYTES) if rnd.random() < 0.05 else rnd.choice(TOKENS).encode()
            out += sep + piece
        if rnd.random() < 0.3:
            out += rnd.choice([b"\\", b"`", b"\\ ", b"` \t"])
        out += b"\n"
        if rnd.random() < 0.3:
            out += rnd.choice(BODY_LINES).encode() + b"\n"
    return bytes(out)


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def pallet_view(data: bytes) -> dict[str, Any]:
    try:
        df = parse(data)
    except DockerfileError:
        return {"ok": False}
    return {
        "ok": True,
        "dump": _b(dump(df)),
        "escape": df.escape,
        "warnings": len(df.warnings),
        "children": [
            [
                i.start_line,
                i.end_line,
                _b(i.original),
                [
                    [_b(h.name), h.file_descriptor, h.expand, h.chomp, _b(h.content)]
                    for h in i.heredocs
                ],
            ]
            for i in df.instructions
        ],
    }


def buildkit_views(bkdump: str, inputs: list[bytes]) -> list[dict[str, Any]]:
    payload = "".join(base64.b64encode(d).decode() + "\n" for d in inputs).encode()
    out = subprocess.run([bkdump], input=payload, capture_output=True, check=True).stdout
    views: list[dict[str, Any]] = []
    for line in out.decode().split("\n")[:-1]:
        o = json.loads(line)
        if not o["ok"]:
            views.append({"ok": False})
            continue
        d = base64.b64decode
        views.append(
            {
                "ok": True,
                "dump": d(o["dump"]),
                "escape": o["escape"],
                "warnings": o["warnings"],
                "children": [
                    [
                        c["start"],
                        c["end"],
                        d(c["original"]),
                        [
                            [d(h["name"]), h["fd"], h["expand"], h["chomp"], d(h["content"])]
                            for h in c["heredocs"] or []
                        ],
                    ]
                    for c in o["children"] or []
                ],
            }
        )
    return views


def main() -> int:
    bkdump = os.environ.get("BKDUMP")
    if not bkdump:
        print("set BKDUMP to the bkdump binary (see README.md)", file=sys.stderr)
        return 2
    seconds = float(os.environ.get("DIFF_SECONDS", "300"))
    rnd = random.Random(int(os.environ.get("SEED", "0")))
    end = time.monotonic() + seconds
    total = mismatches = 0
    while time.monotonic() < end and mismatches < 20:
        batch = [generate(rnd) for _ in range(2000)]
        for data, theirs in zip(batch, buildkit_views(bkdump, batch), strict=True):
            if pallet_view(data) != theirs:
                mismatches += 1
                print("MISMATCH", repr(data)[:500])
        total += len(batch)
    print(f"{total} inputs, {mismatches} mismatches")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
