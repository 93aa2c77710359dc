"""Parsing of the counters ``pallet stats`` reads, and docker's size formats."""

from __future__ import annotations

from pallet.runtime.stats import binary_size, decimal_size, parse_blkio, parse_net_dev

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    5000       9    0    0    0     0          0         0     5000       9    0    0    0     0       0          0
  tap0:     162       2    0    0    0     0          0         0      656       8    0    0    0     0       0          0
  eth1: 1000000      20    0    0    0     0          0         0       44       1    0    0    0     0       0          0
"""

BLKIO = """\
8:0 Read 4096
8:0 Write 12288
8:0 Sync 16384
8:0 Async 0
8:0 Discard 0
8:0 Total 16384
253:0 Read 100
253:0 Write 0
253:0 Total 100
Total 16484
"""


def test_net_dev_sums_every_interface_but_loopback() -> None:
    assert parse_net_dev(NET_DEV) == (162 + 1000000, 656 + 44)
    assert parse_net_dev(NET_DEV.split("\n    lo")[0]) == (0, 0)


def test_blkio_sums_reads_and_writes_over_devices() -> None:
    assert parse_blkio(BLKIO) == (4196, 12288)
    assert parse_blkio("Total 0\n") == (0, 0)


def test_sizes_as_docker_prints_them() -> None:
    assert [decimal_size(n) for n in (0, 648, 1234, 999_000, 1_500_000, 2 * 10**9)] == [
        "0B", "648B", "1.23kB", "999kB", "1.5MB", "2GB",
    ]  # fmt: skip
    assert [binary_size(n) for n in (512, 1536, 32 << 20)] == ["512B", "1.5KiB", "32MiB"]
