"""moby/patternmatcher and ignorefile test vectors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance_paths import CONFORMANCE
from pallet.dockerfile import ignore
from pallet.dockerfile.ignore import IgnorePatternError, PatternMatcher, read_ignore_file

VECTORS = CONFORMANCE / "dockerignore"
PATTERN_CASES = json.loads((VECTORS / "patterns.json").read_text())
COMPILE_CASES = json.loads((VECTORS / "compile-cases.json").read_text())
READALL_CASES = json.loads((VECTORS / "ignorefile-readall.json").read_text())


def _walk_result(matcher: PatternMatcher, path: str) -> bool:
    """What BuildKit's walk computes: each parent prefix first, results fed down."""
    state = None
    parts = path.split("/")
    result = False
    for depth in range(1, len(parts) + 1):
        result, state = matcher.matches_in_walk("/".join(parts[:depth]), state)
    return result


@pytest.mark.parametrize("case", PATTERN_CASES, ids=lambda c: c["id"])
def test_pattern_case(case: dict[str, Any]) -> None:
    if case["expected"] == "error":
        with pytest.raises(IgnorePatternError):
            PatternMatcher(case["patterns"]).matches(case["path"])
        return
    matcher = PatternMatcher(case["patterns"])
    assert matcher.matches(case["path"]) is case["expected"]
    assert matcher.matches_in_walk(case["path"], None)[0] is case["expected"]
    if "MatchesUsingParentResults(walk)" in case["apis"]:
        assert _walk_result(matcher, case["path"]) is case["expected"]


@pytest.mark.parametrize("case", COMPILE_CASES, ids=lambda c: c["pattern"])
def test_compile_case(case: dict[str, Any]) -> None:
    kind, go_regex = ignore._classify(case["pattern"])
    assert kind.value + "Match" == case["match_type"]
    if case["regexp_slash"] is not None:
        assert go_regex == case["regexp_slash"]


@pytest.mark.parametrize("case", READALL_CASES, ids=lambda c: c["id"])
def test_read_all_case(case: dict[str, Any]) -> None:
    assert read_ignore_file(case["input"]) == case["expected"]
