"""A short fuzz run of the parser (the long one: see fuzz_parser.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings

_spec = importlib.util.spec_from_file_location(
    "dockerfile_fuzz_parser", Path(__file__).with_name("fuzz_parser.py")
)
assert _spec is not None and _spec.loader is not None
fuzz: ModuleType = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)


@pytest.mark.parametrize("seed", fuzz.SEEDS, ids=lambda p: p.name)
def test_seed_parses_without_error(seed: Path) -> None:
    fuzz.parse(seed.read_bytes())  # every seed is a valid Dockerfile for the parser


@settings(fuzz.FUZZ_SETTINGS, max_examples=300)
@given(fuzz.dockerfiles())
def test_only_dockerfile_error_escapes(data: bytes) -> None:
    fuzz.check(data)
