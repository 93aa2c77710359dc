"""Build records: a rebuild identical to a fully cached build is answered without
planning, with the same image, tags and progress, and never when anything it depends on
changed."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from build_kit import do_build, pallet_cli

from pallet.build import BuildOptions, Progress, build
from pallet.build.cache import BuildCache
from pallet.build.record import replay
from pallet.store import Store

pytestmark = [pytest.mark.root, pytest.mark.overlay, pytest.mark.runtime]

MakeContext = Callable[..., Path]

DOCKERFILE = """\
FROM busybox
ARG VERSION=1
COPY . /app/
RUN wc -c /app/a.txt > /size
LABEL version=$VERSION
"""


@pytest.fixture
def fresh(busybox_template: Path, tmp_path: Path) -> Store:
    root = tmp_path / "store"
    shutil.copytree(busybox_template, root, symlinks=True)
    return Store.open(root)


def _replay(store: Store, ctx: Path, **options: object) -> str | None:
    got = replay(store, BuildOptions(context=ctx, **options), Progress("quiet"))  # type: ignore[arg-type]
    return None if got is None else got.image_id


def _built_and_recorded(store: Store, ctx: Path, **options: object) -> str:
    first = do_build(store, ctx, **options)
    assert first.executed_steps > 0
    assert _replay(store, ctx, **options) is None  # steps ran: not recorded yet
    again = do_build(store, ctx, **options)
    assert again.executed_steps == 0 and again.image_id == first.image_id
    return again.image_id


def test_a_fully_cached_build_is_replayed_with_its_image_tags_and_progress(
    fresh: Store, make_context: MakeContext, tmp_path: Path
) -> None:
    ctx = make_context({"a.txt": "record\n"}, DOCKERFILE)
    image_id = _built_and_recorded(fresh, ctx)
    planned = io.StringIO()
    build(fresh, BuildOptions(context=ctx), Progress("plain", planned))

    shown = io.StringIO()
    iid = tmp_path / "iid"
    got = replay(
        fresh, BuildOptions(context=ctx, tags=("rec:1",), iidfile=iid), Progress("plain", shown)
    )
    assert got is not None and got.image_id == image_id
    assert iid.read_text() == image_id
    assert fresh.resolve("docker.io/library/rec:1").digest == got.manifest.digest
    strip = [line for line in planned.getvalue().splitlines() if "DONE" not in line]
    assert [line for line in shown.getvalue().splitlines() if "DONE" not in line] == strip

    out = pallet_cli(fresh.root, "build", "-q", "-t", "rec:2", str(ctx))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == image_id
    assert fresh.resolve("docker.io/library/rec:2").digest == got.manifest.digest


def test_any_change_in_the_context_means_a_real_build(
    fresh: Store, make_context: MakeContext
) -> None:
    ctx = make_context({"a.txt": "before\n", ".dockerignore": "ignored\n"}, DOCKERFILE)
    image_id = _built_and_recorded(fresh, ctx)
    (ctx / "ignored").write_text("no step reads this\n")
    assert _replay(fresh, ctx) is None
    assert do_build(fresh, ctx).image_id == image_id  # same image, by the planner

    (ctx / "a.txt").write_text("after!\n")
    assert _replay(fresh, ctx) is None
    changed = do_build(fresh, ctx)
    assert changed.executed_steps > 0 and changed.image_id != image_id


def test_build_args_base_images_and_a_pruned_cache_are_checked(
    fresh: Store, make_context: MakeContext
) -> None:
    ctx = make_context({"a.txt": "args\n"}, DOCKERFILE)
    _built_and_recorded(fresh, ctx)
    assert _replay(fresh, ctx, build_args={"VERSION": "2"}) is None
    assert _replay(fresh, ctx, no_cache=True) is None
    assert _replay(fresh, ctx) is not None

    busybox = fresh.resolve("docker.io/library/busybox:latest")
    fresh.untag("docker.io/library/busybox:latest")
    assert _replay(fresh, ctx) is None  # the base is gone: the real build says so
    fresh.tag("docker.io/library/busybox:latest", busybox)
    assert _replay(fresh, ctx) is not None

    BuildCache(fresh).prune()
    assert _replay(fresh, ctx) is None
    assert do_build(fresh, ctx).executed_steps > 0


def test_an_image_dated_by_this_build_is_never_replayed(
    fresh: Store, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = make_context({}, "FROM scratch\nLABEL a=b\n")
    first = do_build(fresh, ctx)
    second = do_build(fresh, ctx)
    assert first.executed_steps == second.executed_steps == 0
    assert _replay(fresh, ctx) is None  # its created time is the build's own
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = do_build(fresh, ctx)
    assert _replay(fresh, ctx) == dated.image_id


def test_a_context_changed_while_building_is_not_recorded(
    fresh: Store, make_context: MakeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pallet.build import record

    ctx = make_context({"a.txt": "read by COPY\n"}, DOCKERFILE)
    do_build(fresh, ctx)
    real = record.context_listing

    def edited_first(context: Path, used: object = None) -> str | None:
        (ctx / "a.txt").write_text("changed after COPY read it\n")
        return real(context, used)  # type: ignore[arg-type]

    monkeypatch.setattr(record, "context_listing", edited_first)
    assert do_build(fresh, ctx).executed_steps == 0  # the cache answered from the old file
    monkeypatch.setattr(record, "context_listing", real)
    assert _replay(fresh, ctx) is None  # so no record claims the new one gives that image
    assert do_build(fresh, ctx).executed_steps > 0
