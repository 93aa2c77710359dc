"""Fuzz the Dockerfile parser: whatever the bytes, only DockerfileError may escape.

Inputs are the seed files in ``seeds/`` mutated at the byte and token level, plus
free-form bytes. Each input goes through ``parse``, ``dump``, and the typed layer
(``parse_instructions``, ``parse_stages``).

Long run (10 minutes by default when run as a script)::

    FUZZ_SECONDS=600 .venv/bin/python tests/dockerfile/fuzz/fuzz_parser.py

The pytest version (``test_fuzz_parser.py``) runs the same property for a few seconds.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pallet.dockerfile import DockerfileError, dump, parse
from pallet.dockerfile.instructions import parse_instructions, parse_stages

SEEDS = sorted((Path(__file__).parent / "seeds").glob("*.Dockerfile"))
SEED_BYTES = [p.read_bytes() for p in SEEDS]

# fragments that steer mutations toward the parser's interesting states
TOKENS = [
    b"\\", b"`", b"\\\n", b"`\n", b"\n", b"\r\n", b" ", b"\t", b"#", b"# escape=`\n",
    b"# escape=\\\n", b"# syntax=x\n", b"<<", b"<<-", b"<<EOF", b"\nEOF\n", b"<<'EOF'",
    b'"', b"'", b"[", b"]", b'["a", "b"]', b"{", b"}", b",", b"=", b"$", b"${", b"${A:-",
    b"--", b"--mount=", b"--from=", b"--link", b"--chown=", b"ONBUILD ", b"RUN ", b"COPY ",
    b"ADD ", b"ENV ", b"ARG ", b"LABEL ", b"FROM ", b"HEALTHCHECK ", b"CMD ", b"SHELL ",
    b"\x00", b"\xff", b"\xc3", b"\xa0", b"\xc2\xa0", b"\xef\xbb\xbf", b"\xe2\x80\xa8",
    b"\\u0000", b"\\ud800", b"1e999", b"type=cache,target=/x", b"NONE", b"AS ",
]  # fmt: skip

_mutation = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 1 << 16), st.sampled_from(TOKENS)),
    st.tuples(st.just("bytes"), st.integers(0, 1 << 16), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 16), st.integers(1, 16)),
    st.tuples(st.just("dup"), st.integers(0, 1 << 16), st.integers(1, 64)),
)


@st.composite
def dockerfiles(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=512))
    if draw(st.integers(0, 4)) == 0:
        return b"".join(draw(st.lists(st.sampled_from(TOKENS), max_size=40)))
    data = bytearray(draw(st.sampled_from(SEED_BYTES)))
    for kind, at, arg in draw(st.lists(_mutation, max_size=12)):
        at %= len(data) + 1
        if kind in ("insert", "bytes"):
            assert isinstance(arg, bytes)
            data[at:at] = arg
        elif kind == "delete":
            assert isinstance(arg, int)
            del data[at : at + arg]
        else:
            assert isinstance(arg, int)
            data[at:at] = data[at : at + arg]
    return bytes(data)


def check(data: bytes) -> None:
    """The property: parsing any bytes ends in a tree or a DockerfileError, nothing else."""
    try:
        df = parse(data)
    except DockerfileError:
        return
    out = dump(df)
    assert out.count("\n") == len(df.instructions)
    for ins in df.instructions:
        assert 1 <= ins.start_line <= ins.end_line
    try:
        parse_instructions(df)
    except DockerfileError:
        pass
    try:
        parse_stages(df)
    except DockerfileError:
        pass


FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def run_for(seconds: float, chunk: int = 500) -> int:
    """Run the property until ``seconds`` have passed; return how many inputs ran."""

    @settings(FUZZ_SETTINGS, max_examples=chunk)
    @given(dockerfiles())
    def one_chunk(data: bytes) -> None:
        check(data)

    done = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        one_chunk()
        done += chunk
    return done


def main() -> int:
    seconds = float(os.environ.get("FUZZ_SECONDS", "600"))
    for seed in SEED_BYTES:  # the seeds themselves must always be fine
        check(seed)
    total = run_for(seconds)
    print(f"fuzzed {total} inputs in {seconds:.0f}s: only DockerfileError escaped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
