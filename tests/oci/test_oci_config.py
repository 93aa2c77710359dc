"""Image configs: validation, Docker-faithful re-encoding, immutable updates."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from conformance_paths import CONFORMANCE
from pallet.errors import OCIError
from pallet.oci.config import ContainerConfig, History, ImageConfig, history_entry
from pallet.oci.digest import Digest
from pallet.oci.platform import Platform

CASES = json.loads((CONFORMANCE / "image-spec/schema-tests/cases.json").read_text())["cases"]
DOCKER_HUB = next(c for c in CASES if c["id"] == "TestBackwardsCompatibilityConfig/00")["body"]
D1 = Digest.from_bytes(b"1")
D2 = Digest.from_bytes(b"2")


def minimal(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [D1]},
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def parse(doc: dict[str, Any]) -> ImageConfig:
    return ImageConfig.from_bytes(json.dumps(doc).encode())


def test_docker_hub_config_fields() -> None:
    data = DOCKER_HUB.encode()
    config = ImageConfig.from_bytes(data)
    assert config.image_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert config.to_bytes() is config.raw
    assert config.platform == Platform("linux", "amd64")
    assert config.config.cmd == ("sh",)
    assert config.config.entrypoint == ("docker-entrypoint.sh",)
    assert config.config.env_dict()["DOCKER_VERSION"] == "1.12.1"
    assert config.config.on_build == ()
    assert config.config.volumes is None
    assert config.config.extra["Hostname"] == "09713501c176"
    assert {"container", "container_config", "docker_version"} <= set(config.extra)
    assert config.created is not None
    assert len(config.diff_ids) == len([h for h in config.history if not h.empty_layer])


def test_unknown_fields_survive_a_change() -> None:
    config = ImageConfig.from_bytes(DOCKER_HUB.encode())
    changed = config.with_config(cmd=("/bin/true",)).with_layer(
        D2, history_entry("COPY x /x", created="2024-01-01T00:00:00Z")
    )
    assert changed.raw is None and changed.image_id != config.image_id
    doc = json.loads(changed.to_bytes())
    original = json.loads(DOCKER_HUB)
    assert doc["container_config"] == original["container_config"]
    assert doc["docker_version"] == original["docker_version"]
    assert doc["config"]["Hostname"] == original["config"]["Hostname"]
    assert doc["config"]["Volumes"] is None  # explicit nulls stay explicit
    assert doc["config"]["Cmd"] == ["/bin/true"]
    assert doc["rootfs"]["diff_ids"][-1] == D2
    assert doc["history"][-1] == {"created": "2024-01-01T00:00:00Z", "created_by": "COPY x /x"}
    # Key order of the original is kept; Docker's order for what was not there.
    assert list(doc) == list(original)
    # And the result parses back to the same thing.
    assert ImageConfig.from_bytes(changed.to_bytes()) == changed


def test_new_config_is_compact_oci_order() -> None:
    config = (
        ImageConfig.new(Platform("linux", "arm64", "v8"), created="2024-01-01T00:00:00Z")
        .with_config(env=("PATH=/bin",), cmd=("sh",), labels={"b": "1", "a": "2"})
        .with_config(exposed_ports=("80/tcp", "443/tcp"), volumes=("/data",))
        .with_layer(D1, history_entry("ADD rootfs /"))
        .with_history(history_entry("CMD sh", empty_layer=True))
    )
    data = config.to_bytes()
    assert b" " not in data.replace(b"ADD rootfs /", b"").replace(b"CMD sh", b"")
    doc = json.loads(data)
    assert list(doc) == ["created", "architecture", "os", "variant", "config", "rootfs", "history"]
    assert list(doc["config"]) == ["ExposedPorts", "Env", "Cmd", "Volumes", "Labels"]
    assert doc["config"]["ExposedPorts"] == {"443/tcp": {}, "80/tcp": {}}
    assert list(doc["config"]["Labels"]) == ["a", "b"]
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [D1]}
    assert doc["history"][1] == {"created_by": "CMD sh", "empty_layer": True}
    assert config.to_bytes() == data  # deterministic
    assert config.image_id == Digest.from_bytes(data)
    assert config.chain_id == D1


def test_layer_history_pairs_entries_with_layers() -> None:
    config = (
        ImageConfig.new(Platform("linux", "amd64"))
        .with_history(history_entry("ARG x", empty_layer=True))
        .with_layer(D1, history_entry("RUN a"))
        .with_layer(D2)
    )
    assert [(h.created_by, d) for h, d in config.layer_history()] == [
        ("ARG x", None),
        ("RUN a", D1),
        ("", D2),
    ]


def test_with_env_replaces_in_place() -> None:
    cfg = ContainerConfig(env=("A=1", "B=2")).with_env("A", "3").with_env("C", "x=y")
    assert cfg.env == ("A=3", "B=2", "C=x=y")
    assert cfg.env_dict() == {"A": "3", "B": "2", "C": "x=y"}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (minimal(architecture=...), "no architecture"),
        (minimal(os=...), "no os"),
        (minimal(rootfs=...), "no rootfs"),
        (minimal(rootfs={"type": "layers"}), "no diff_ids"),
        (minimal(rootfs={"type": "tar", "diff_ids": []}), "rootfs.type"),
        (minimal(rootfs={"type": "layers", "diff_ids": ["sha256:abc"]}), "invalid sha256 digest"),
        (minimal(created="yesterday"), "RFC 3339"),
        (minimal(history=[{"created": "2024-01-01"}]), "RFC 3339"),
        (minimal(history=[{"empty_layer": "yes"}]), "empty_layer must be true or false"),
        (minimal(history={}), "history must be an array"),
        (minimal(config={"Env": ["=x"]}), "NAME=value"),
        (minimal(config={"Cmd": "sh"}), r"config.Cmd must be an array"),
        (minimal(config={"ExposedPorts": {"80/tcp": 1}}), "ExposedPorts"),
        (minimal(config={"Labels": {"a": 1}}), "Labels"),
        (minimal(config={"ArgsEscaped": 1}), "ArgsEscaped"),
        (minimal(config={"Healthcheck": {"Interval": "1s"}}), "Healthcheck.Interval"),
        (minimal(config=[]), "config must be an object"),
        (minimal(**{"os.features": "x"}), "os.features"),
    ],
)
def test_config_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(OCIError, match=message):
        parse(doc)


def test_config_nulls_and_healthcheck_accepted() -> None:
    config = parse(
        minimal(
            config={
                "Entrypoint": None,
                "Cmd": None,
                "Labels": None,
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000, "Retries": 3},
                "Shell": ["/bin/bash", "-c"],
                "StopSignal": "SIGTERM",
                "ArgsEscaped": True,
            },
            history=None,
        )
    )
    assert config.config.healthcheck == {
        "Test": ["CMD", "true"],
        "Interval": 1000000000,
        "Retries": 3,
    }
    assert config.config.shell == ("/bin/bash", "-c")
    assert config.history == ()
    assert json.loads(config.serialize())["config"]["Entrypoint"] is None


def test_programmatic_values_are_validated() -> None:
    with pytest.raises(OCIError, match="NAME=value"):
        ContainerConfig(env=("nope",))
    with pytest.raises(OCIError, match="RFC 3339"):
        History(created="now")
    with pytest.raises(OCIError):
        ImageConfig.new(Platform("linux", "amd64")).with_layer("sha256:xyz")
