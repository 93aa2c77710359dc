"""FramedBlock: data kept with room for stored-deflate frames, framed in place."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pallet.layer.blocks import STORED_MAX, FramedBlock

CAPACITY = 3 * STORED_MAX + 1000  # a few segments and a short last one


def filled(chunks: list[bytes]) -> tuple[FramedBlock, bytes]:
    block = FramedBlock(CAPACITY)
    taken = bytearray()
    for chunk in chunks:
        n = block.append(chunk)
        assert n == min(len(chunk), CAPACITY - len(taken))
        taken += chunk[:n]
    return block, bytes(taken)


_chunks = st.lists(
    st.one_of(st.binary(max_size=300), st.integers(0, 2 * STORED_MAX).map(os.urandom)),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(chunks=_chunks)
def test_appended_data_reads_back(chunks: list[bytes]) -> None:
    block, data = filled(chunks)
    assert block.fill == len(data)
    assert block.room() == CAPACITY - len(data)
    assert block.data() == data
    assert b"".join(block.segments()) == data
    assert block.tail(40_000) == data[-40_000:]
    for start in (0, STORED_MAX - 3, len(data) // 2):
        assert bytes(block.sample(start, 8192)) == data[start : start + 8192]


@settings(max_examples=60, deadline=None)
@given(chunks=_chunks, final=st.booleans())
def test_stored_frames_inflate_to_the_data(chunks: list[bytes], final: bool) -> None:
    block, data = filled(chunks)
    if not data:
        return
    framed = bytes(block.stored(final))
    # a stored frame per 65535 bytes: that is all the deflate stream adds
    assert len(framed) == len(data) + 5 * -(-len(data) // STORED_MAX)
    inflate = zlib.decompressobj(-15)
    assert inflate.decompress(framed) == data
    assert inflate.eof is final  # only a final block carries the BFINAL bit


def test_views_receive_reads_across_frame_gaps(tmp_path: Path) -> None:
    data = os.urandom(STORED_MAX + 10)
    (tmp_path / "src").write_bytes(data)
    block = FramedBlock(CAPACITY)
    block.append(b"head")
    fd = os.open(tmp_path / "src", os.O_RDONLY)
    try:
        got = os.readv(fd, block.views(block.fill, block.fill + len(data)))
    finally:
        os.close(fd)
    block.fill += got
    assert block.data() == b"head" + data
