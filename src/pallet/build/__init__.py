"""Dockerfile -> image: plan execution, context hashing, cache, sandboxed RUN steps."""

from pallet.lazy_exports import lazy_getattr

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (3 ms)

__all__ = ["BuildOptions", "BuildResult", "Output", "Progress", "Secret", "build"]

__getattr__ = lazy_getattr(
    __name__,
    {
        "BuildOptions": "options",
        "BuildResult": "builder",
        "Output": "options",
        "Progress": "progress",
        "Secret": "options",
        "build": "builder",
    },
)

if TYPE_CHECKING:
    from pallet.build.builder import BuildResult, build
    from pallet.build.options import BuildOptions, Output, Secret
    from pallet.build.progress import Progress
