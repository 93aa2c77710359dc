"""COPY writes what goes below the directories it creates straight into the step's upper
dir, not through the overlay mount. Differential test: the same COPY steps written all
through the mount (as before) give byte-identical layers, over lower layers that the
copies merge into, replace (a file by a directory: whiteout and opaque directory) and
resolve names in, with hard links across both kinds of directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from build_kit import do_build, rootfs_of

import pallet.build.executor as executor_mod
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]

DOCKERFILE = """\
FROM busybox
RUN mkdir -p /app/keep /app/sub && echo old > /app/keep/old.txt && echo file > /app/replaced \
 && chmod 0750 /app && chown 12:34 /app && ln -s /app/sub /app/via
COPY src/ /app/
COPY --chown=123:456 --chmod=640 src/ /chowned/
COPY one/ two/ /merged/
COPY linked/ /app/linked/
COPY nested/ /app/via/nested/
"""

FILES = {
    "src/top.txt": "top\n",
    "src/keep/new.txt": "new in a lower directory\n",
    "src/replaced/inner.txt": "a directory where a file was\n",
    "src/fresh/deep/er/f.txt": "deep\n",
    "src/fresh/link": ("symlink", "../keep/old.txt"),
    "one/shared/x.txt": "from one\n",
    "one/shared/only1.txt": "1\n",
    "two/shared/x.txt": "from two\n",
    "two/shared/only2.txt": "2\n",
    "linked/a.txt": "linked a\n",
    "linked/sub/same.txt": "linked sub\n",
    "linked/zz/b.txt": "linked b\n",
    "nested/n/f.txt": "through a symlink of the image\n",
}


def test_copy_straight_into_the_upper_dir_makes_the_same_layers(
    store: Store,
    make_context: MakeContext,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ctx = make_context(FILES, DOCKERFILE)
    # hard links across a directory COPY makes (zz/, sub/) and one it does not (linked/)
    os.link(ctx / "linked" / "a.txt", ctx / "linked" / "zz" / "a-again.txt")
    os.unlink(ctx / "linked" / "sub" / "same.txt")
    os.link(ctx / "linked" / "zz" / "b.txt", ctx / "linked" / "sub" / "same.txt")
    for path in sorted(ctx.rglob("*")):  # older than the epoch: mtimes compared unclamped
        os.utime(path, (1_500_000_000, 1_500_000_000), follow_symlinks=False)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")

    uppers: list[Any] = []
    original = executor_mod.execute_copy

    def spy(*args: Any) -> None:
        uppers.append(args[6] if len(args) > 6 else None)
        original(*args)

    monkeypatch.setattr(executor_mod, "execute_copy", spy)
    direct = do_build(store, ctx, no_cache=True)
    assert len(uppers) == 5 and all(u is not None for u in uppers)

    def through_the_mount(*args: Any) -> None:
        original(*args[:6])

    monkeypatch.setattr(executor_mod, "execute_copy", through_the_mount)
    mounted = do_build(store, ctx, no_cache=True)
    assert direct.config.diff_ids == mounted.config.diff_ids
    assert direct.image_id == mounted.image_id

    root = rootfs_of(store, direct, tmp_path / "rootfs")
    assert (root / "app" / "keep" / "old.txt").read_text() == "old\n"
    assert (root / "app" / "keep" / "new.txt").read_text() == FILES["src/keep/new.txt"]
    assert os.stat(root / "app").st_uid == 12  # the lower's, copied up
    assert (root / "app" / "replaced" / "inner.txt").is_file()
    assert os.readlink(root / "app" / "fresh" / "link") == "../keep/old.txt"
    assert (root / "chowned" / "fresh" / "deep" / "er" / "f.txt").stat().st_uid == 123
    assert (root / "merged" / "shared" / "x.txt").read_text() == "from two\n"
    assert sorted(os.listdir(root / "merged" / "shared")) == ["only1.txt", "only2.txt", "x.txt"]
    linked = root / "app" / "linked"
    assert (linked / "a.txt").stat().st_ino == (linked / "zz" / "a-again.txt").stat().st_ino
    assert (linked / "zz" / "b.txt").stat().st_ino == (linked / "sub" / "same.txt").stat().st_ino
    assert (root / "app" / "sub" / "nested" / "n" / "f.txt").is_file()  # /app/via -> /app/sub
