"""Dockerfiles: parser (BuildKit-conformant syntax tree), dump, typed instructions."""

from pallet.dockerfile.ast import (
    Arg,
    Directive,
    Dockerfile,
    Flag,
    Heredoc,
    Instruction,
    Position,
    Warning,
)
from pallet.dockerfile.dump import dump
from pallet.dockerfile.errors import DockerfileError
from pallet.dockerfile.parser import parse

__all__ = [
    "Arg",
    "Directive",
    "Dockerfile",
    "DockerfileError",
    "Flag",
    "Heredoc",
    "Instruction",
    "Position",
    "Warning",
    "dump",
    "parse",
]
