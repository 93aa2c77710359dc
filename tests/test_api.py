"""The public Python API end to end: bootstrap, build, run, tag, save, load, remove."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from pallet import api
from pallet.errors import NotFound
from pallet.store import Store

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.root, pytest.mark.runtime, pytest.mark.overlay]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    if os.geteuid() != 0:
        pytest.skip("LOUD SKIP: building and running need root (CI runs as root)")
    return api.open_store(tmp_path / "root")


def test_build_run_save_load_through_the_api(store: Store, tmp_path: Path) -> None:
    from pallet.build import BuildOptions
    from pallet.runtime.container import RunOptions

    api.bootstrap_busybox(store)
    result = api.build(
        store,
        BuildOptions(
            context=REPO / "examples" / "hello", tags=("hello:api",), build_args={"GREETING": "hi"}
        ),
    )
    image = api.find_image(store, "hello:api")
    assert image.id == result.image_id
    assert image.config.config.entrypoint == ("/app/greet.sh",)

    with tempfile.TemporaryFile() as out:
        code = api.run(
            store, RunOptions(image="hello:api", command=("api",), auto_remove=True), stdout=out
        )
        out.seek(0)
        assert code == 0
        assert out.read().decode().splitlines()[0] == "hi, api! (uid 65534, in /app)"

    api.tag(store, "hello:api", "hello:copy")
    archive = tmp_path / "hello.tar"
    api.save(store, ["hello:api"], archive)
    events, errors = api.remove_images(store, ["hello:api", "hello:copy"])
    assert errors == [] and [e.action for e in events][-1] == "Deleted"
    with pytest.raises(NotFound):
        api.find_image(store, "hello:api")
    loaded = api.load(store, archive)
    assert [list(img.names) for img in loaded] == [["docker.io/library/hello:api"]]
    assert api.find_image(store, "hello:api").id == result.image_id
    assert api.normalize("hello") == "docker.io/library/hello:latest"
