"""Dockerfile -> image: plan execution, context hashing, cache, sandboxed RUN steps."""

from pallet.build.builder import BuildResult, build
from pallet.build.options import BuildOptions, Output, Secret
from pallet.build.progress import Progress

__all__ = ["BuildOptions", "BuildResult", "Output", "Progress", "Secret", "build"]
