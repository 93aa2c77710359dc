"""store.fsutil.remove_tree: the whole tree goes, nothing outside it does."""

from __future__ import annotations

import os
from pathlib import Path

from pallet.store.fsutil import remove_tree


def _tree(root: Path, outside: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "f").write_text("x")
    (root / "a" / "g").write_text("y")
    (root / "a" / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "a" / "fifo")
    (root / "link-to-dir").symlink_to(outside)  # must not be entered
    (root / "a" / "link-to-file").symlink_to(outside / "keep")
    (root / "dangling").symlink_to(root / "nowhere")
    os.link(root / "a" / "g", root / "hard")


def test_remove_tree_removes_everything_below_and_nothing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    root = tmp_path / "tree"
    _tree(root, outside)
    remove_tree(root)
    assert not root.exists()
    assert (outside / "keep").read_text() == "kept"


def test_remove_tree_of_read_only_directories_and_missing_paths(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "ro" / "sub").mkdir(parents=True)
    (root / "ro" / "sub" / "f").write_text("x")
    os.chmod(root / "ro" / "sub", 0o555)
    os.chmod(root / "ro", 0o555)
    remove_tree(root)
    assert not root.exists()
    remove_tree(root)  # already gone: nothing to do
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    remove_tree(link)  # a symlink itself is removed, its target is not
    assert not link.is_symlink() and tmp_path.is_dir()
