"""``build(store, options)``: a Dockerfile and a context directory into a stored image.

Order matters for the user: the Dockerfile is parsed and resolved (syntax and semantic
errors, missing base images, missing secrets) before any step runs; the image's tags are
written last, after every blob it needs is in the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pallet.build import record
from pallet.build.baseimage import image_for
from pallet.build.context_hash import ContextHasher
from pallet.build.copy_step import check_copy
from pallet.build.executor import StageRunner
from pallet.build.options import BuildOptions, Output
from pallet.build.progress import Progress
from pallet.build.rootfs import clean_stale_mounts, scratch_dir
from pallet.build.sources import ContextTree
from pallet.dockerfile import parse
from pallet.dockerfile.plan import BuildPlan, resolve
from pallet.errors import BuildError, InvalidArgument, PalletError
from pallet.images.lookup import LocalImage
from pallet.oci.config import ImageConfig
from pallet.oci.descriptor import Descriptor
from pallet.oci.digest import Digest
from pallet.oci.platform import Platform, host_platform
from pallet.store import Store

if TYPE_CHECKING:
    from pallet.runtime.oci_runtime import OCIRuntime

MAX_DOCKERFILE = 16 << 20
RUNTIME_STATE = "build/runc"  # the OCI runtime's --root for RUN containers


@dataclass(frozen=True)
class BuildResult:
    image_id: Digest  # the config digest, docker's image ID
    manifest: Descriptor
    config: ImageConfig
    tags: tuple[str, ...]
    cached_steps: int
    executed_steps: int
    #: build args given but declared by no ARG (docker warns and goes on)
    unused_build_args: tuple[str, ...] = ()
    #: ``name@digest`` of each tag pushed (``--push``), in ``tags`` order
    pushed: tuple[str, ...] = ()


def _read_dockerfile(options: BuildOptions) -> tuple[str, str]:
    """The Dockerfile's text and its name relative to the context (for .dockerignore)."""
    if options.dockerfile_text is not None:
        return options.dockerfile_text, "Dockerfile"
    path = options.dockerfile or options.context / "Dockerfile"
    try:
        if path.stat().st_size > MAX_DOCKERFILE:
            raise InvalidArgument(f"{path}: larger than {MAX_DOCKERFILE} bytes")
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InvalidArgument(f"cannot read the Dockerfile {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read the Dockerfile {path}: {exc}") from None
    return text, str(path)


def _platform(options: BuildOptions) -> Platform:
    host = host_platform()
    if options.platform:
        wanted = Platform.parse(options.platform)
        if not (wanted == host or wanted.matches(host)):
            raise InvalidArgument(
                f"--platform {options.platform}: only the host platform ({host}) can be built"
            )
    return host


def _secrets(options: BuildOptions, scratch: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for secret in options.secrets:
        if secret.path is not None:
            if not secret.path.is_file():
                raise InvalidArgument(f"--secret id={secret.id}: {secret.path} is not a file")
            out[secret.id] = secret.path.absolute()
        elif secret.env is not None:
            value = os.environ.get(secret.env)
            if value is None:
                raise InvalidArgument(
                    f"--secret id={secret.id}: environment variable {secret.env} is not set"
                )
            path = scratch / f"secret-{len(out)}"
            path.write_text(value)
            os.chmod(path, 0o400)
            out[secret.id] = path
    return out


def _check_secrets(plan: BuildPlan, given: set[str], ssh: set[str]) -> None:
    for stage in plan.stages:
        for step in stage.steps:
            if step.run is None:
                continue
            for mount in step.run.mounts:
                if mount.type == "secret" and mount.required:
                    sid = mount.id or os.path.basename(mount.target)
                    if sid not in given:
                        raise BuildError(
                            f"line {step.line}: RUN needs secret {sid!r}: "
                            f"pass it with --secret id={sid},src=FILE"
                        )
                if mount.type == "ssh" and mount.required and (mount.id or "default") not in ssh:
                    sid = mount.id or "default"
                    raise BuildError(
                        f"line {step.line}: RUN needs ssh agent {sid!r}: pass it with --ssh {sid}"
                    )


def build(store: Store, options: BuildOptions, progress: Progress | None = None) -> BuildResult:
    """Build the image ``options`` describe into ``store``; see :class:`BuildOptions`."""
    progress = progress or Progress("quiet")
    context = options.context.absolute()
    if not context.is_dir():
        raise InvalidArgument(f"build context {options.context} is not a directory")
    platform = _platform(options)
    _check_push(options)
    text, name = _read_dockerfile(options)
    record_key = record.record_key(options, text)
    dockerfile = parse(text, filename=os.path.basename(name))
    images: dict[str, LocalImage] = {}

    def base_config(ref: str, plat: Platform) -> ImageConfig:
        if ref not in images:
            images[ref] = image_for(store, ref, plat, options.pull)
        return images[ref].config

    plan = resolve(
        dockerfile,
        build_args=options.build_args,
        target=options.target,
        target_platform=platform,
        base_config=base_config,
    )
    for stage in plan.stages:  # COPY --from=image and mounts from images
        for step in stage.steps:
            sources = [step.copy.source] if step.copy else []
            sources += list(step.run.mount_sources) if step.run else []
            for src in sources:
                if src.kind == "image" and src.image and src.image not in images:
                    images[src.image] = image_for(store, src.image, platform, options.pull)
    _check_secrets(plan, {s.id for s in options.secrets}, {a.id for a in options.ssh})
    for stage in plan.stages:
        for step in stage.steps:
            if step.copy is not None:
                check_copy(step.copy, f"line {step.line}: {step.keyword}")
            if (
                step.run is not None
                and step.run.security == "insecure"
                and "security.insecure" not in options.allow
            ):
                raise BuildError(
                    f"line {step.line}: RUN --security=insecure needs the security.insecure "
                    "entitlement (pallet build --allow security.insecure)"
                )
            for mount in step.run.mounts if step.run is not None else ():
                if mount.type not in ("bind", "cache", "tmpfs", "secret", "ssh"):
                    raise BuildError(
                        f"line {step.line}: RUN --mount=type={mount.type} is not supported"
                    )
    if os.geteuid() != 0 and any(s.changes_filesystem for st in plan.stages for s in st.steps):
        raise BuildError(
            "pallet build needs root for its filesystem steps (overlay mounts and an OCI "
            "runtime); run it as root"
        )
    tree = ContextTree(context, name, ContextHasher(store.state.path))
    clean_stale_mounts(store)
    runtime_needed = any(s.run for st in plan.stages for s in st.steps)
    if _dead_builders_containers(store):
        _runtime(store)  # cleans them up now, whether this build runs anything or not
    # gc takes this lock exclusively: nothing the build reads or writes can be collected
    # until its tags are written, so it needs no lease (and an unchanged rebuild writes
    # nothing at all)
    with store.gc_lock(), scratch_dir(store) as scratch:
        runner = StageRunner(
            store,
            options,
            plan,
            tree,
            images,
            (lambda: _runtime(store)) if runtime_needed else None,
            scratch,
            progress,
            _secrets(options, scratch),
        )
        final = runner.run_all()
        config = final.image
        if options.labels:
            labels = dict(config.config.labels or {})
            labels.update(options.labels)
            config = config.with_config(labels=labels)
        desc = _store_image(store, config, final.fs.layers, options.tags)
        _write_outputs(store, options, desc, final.fs.layers, final.fs.diff_ids)
        for spec in options.cache_to:
            from pallet.build.cache_io import export_cache

            export_cache(store, runner.records, spec.path)
    image_id = Digest.from_bytes(config.to_bytes())
    if (
        record_key is not None
        and _replayable(runner, config)
        # None if an entry the build read changed since it read it
        and (listing := record.context_listing(context, tree.read_entries())) is not None
    ):
        record.save(
            store,
            record_key,
            listing,
            {ref: image.descriptor.digest for ref, image in images.items()},
            list(runner.records),
            desc,
            image_id,
            runner.vertices,
            plan.unused_build_args,
        )
    if options.iidfile is not None:
        options.iidfile.write_text(str(image_id))
    pushed = _push_tags(store, options, progress) if options.push else ()
    return BuildResult(
        image_id,
        desc,
        config,
        tuple(options.tags),
        runner.counters.cached,
        runner.counters.executed,
        plan.unused_build_args,
        pushed,
    )


def _replayable(runner: StageRunner, config: ImageConfig) -> bool:
    """Whether a build record may answer the next identical build: no step ran (so the
    image came out of the cache alone), none fetched anything, and the image does not
    carry this build's own clock (nothing but scratch below a stage of metadata)."""
    if runner.counters.executed or runner.fetches:
        return False
    if runner.epoch is not None:
        return True
    return runner.created not in (config.created, *(h.created for h in config.history))


def _store_image(
    store: Store, config: ImageConfig, layers: tuple[Descriptor, ...], tags: tuple[str, ...]
) -> Descriptor:
    """Config, manifest, then tags (or a dangling entry), each written only if it is not
    there already: a rebuild that changed nothing leaves the store untouched, as docker."""
    from pallet.oci import mediatypes as mt
    from pallet.oci.manifest import Manifest
    from pallet.oci.reference import Reference

    config_bytes = config.to_bytes()
    config_desc = Descriptor(mt.OCI_CONFIG, Digest.from_bytes(config_bytes), len(config_bytes))
    if not store.has_blob(config_desc.digest):
        store.write_blob(config_bytes, config_desc.digest)
    manifest = Manifest.build(config_desc, list(layers))
    if not store.has_blob(manifest.digest):
        store.write_blob(manifest.raw, manifest.digest)
    desc = manifest.descriptor()
    present = {(e.name, e.digest) for e in store.images()}
    names = [str(Reference.parse(n).normalized()) for n in tags]
    for name in names:
        if (name, desc.digest) not in present:
            store.tag(name, desc)
    if not names and not any(digest == desc.digest for _, digest in present):
        store.add_image(desc)
    return desc


def _dead_builders_containers(store: Store) -> bool:
    """Whether the runtime's state holds a RUN container whose builder died (its id is
    ``pallet-build-<builder pid>-<random>``): only then is the runtime asked to list them."""
    try:
        names = os.listdir(store.root / RUNTIME_STATE)
    except FileNotFoundError:
        return False
    for name in names:
        parts = name.split("-")
        if len(parts) == 4 and parts[:2] == ["pallet", "build"] and parts[2].isdigit():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
    return False


def _runtime(store: Store) -> OCIRuntime:
    """The OCI runtime for RUN steps, once RUN containers of dead builders are gone."""
    from pallet.build.run_step import clean_stale_containers
    from pallet.runtime.oci_runtime import OCIRuntime, find_runtime

    runtime = OCIRuntime(find_runtime(), store.root / RUNTIME_STATE)
    clean_stale_containers(runtime)
    return runtime


def _check_push(options: BuildOptions) -> None:
    """``--push`` needs names, and names a registry accepts, before anything runs."""
    if not options.push:
        return
    if not options.tags:
        raise InvalidArgument("--push needs at least one -t NAME to push the image to")
    from pallet.transport.registry_ref import ImageRef

    for tag in options.tags:
        ref = ImageRef.parse(tag)
        if ref.digest is not None:
            raise InvalidArgument(f"--push: -t {tag}: cannot push to a digest reference")


def _push_tags(store: Store, options: BuildOptions, progress: Progress) -> tuple[str, ...]:
    """Push every ``-t`` name (already written to the store) to its registry."""
    from pallet.transport.registry_push import push

    pushed: list[str] = []
    for tag in options.tags:
        number = progress.vertex(f"pushing {tag}")
        try:
            result = push(tag, store.root)
        except PalletError as exc:
            progress.error(number, str(exc))
            raise
        progress.done(number)
        pushed.append(f"{result.name}@{result.digest}")
    return tuple(pushed)


def _write_outputs(
    store: Store,
    options: BuildOptions,
    desc: Descriptor,
    layers: tuple[Descriptor, ...],
    diff_ids: tuple[Digest, ...],
) -> None:
    for output in options.outputs:
        _write_output(store, output, desc, layers, diff_ids, options.tags)


def _write_fs_tar(
    store: Store, layers: tuple[Descriptor, ...], diff_ids: tuple[Digest, ...], dest: Path
) -> None:
    """``-o type=tar``: the image's filesystem (layers applied) as one tar file, written
    beside ``dest`` and renamed into place when complete."""
    from pallet.layer.writer import write_tar

    with scratch_dir(store) as work:
        tree = work / "rootfs"
        store.snapshots.materialize_layers(list(layers), list(diff_ids), tree)
        partial = dest.with_name(f".{dest.name}.partial")
        try:
            with open(partial, "wb") as out:
                write_tar(tree, out)
            os.replace(partial, dest)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def _write_output(
    store: Store,
    output: Output,
    desc: Descriptor,
    layers: tuple[Descriptor, ...],
    diff_ids: tuple[Digest, ...],
    tags: tuple[str, ...],
) -> None:
    if output.type == "image":
        return
    assert output.dest is not None
    if output.type == "local":
        dest = output.dest
        if dest.exists() and any(dest.iterdir()):
            raise InvalidArgument(f"-o type=local,dest={dest}: the directory is not empty")
        store.snapshots.materialize_layers(list(layers), list(diff_ids), dest)
        return
    if output.type == "tar":
        _write_fs_tar(store, layers, diff_ids, output.dest)
        return
    from pallet.transport.copy import copy
    from pallet.transport.names import TransportSpec, open_destination, open_source

    transport = "oci-archive" if output.type == "oci" else "docker-archive"
    dst_spec = TransportSpec(transport, str(output.dest.absolute()), tags[0] if tags else None)
    src = open_source(TransportSpec("pallet", ref=str(desc.digest)), store.root)
    try:
        dst = open_destination(dst_spec, store.root)
        try:
            copy(src, dst)
        finally:
            close = getattr(dst, "close", None)
            if close is not None:
                close()  # an archive never committed is removed, not left half-written
    finally:
        src.close()
