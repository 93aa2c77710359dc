"""Render a syntax tree in the format of BuildKit's parser test goldens (``result`` files)."""

from __future__ import annotations

from pallet.dockerfile.ast import Dockerfile, Instruction
from pallet.dockerfile.gostrings import lower, quote, trim_space


def dump_instruction(ins: Instruction) -> str:
    """One instruction as BuildKit's ``Node.Dump`` prints it (without the parentheses)."""
    parts = [lower(ins.keyword)]
    if ins.flags:
        parts.append(" [" + " ".join(quote(f.text) for f in ins.flags) + "]")
    for arg in ins.args:
        parts.append(" " + quote(arg.value))
    if ins.sub is not None:
        parts.append(" (" + dump_instruction(ins.sub) + ")")
    return trim_space("".join(parts))


def dump(dockerfile: Dockerfile) -> str:
    """The whole file: one ``(instruction)`` per line, newline-terminated."""
    return "".join(f"({dump_instruction(ins)})\n" for ins in dockerfile.instructions)
