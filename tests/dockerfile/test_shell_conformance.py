"""BuildKit's own shell-lexer vectors (envVarTest, wordsTest, lex_test.go tables)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance_paths import CONFORMANCE
from pallet.dockerfile.shell import ShellExpansionError, ShellLex, env_from_list

BUILDKIT = CONFORMANCE / "buildkit"
SHELL_DIR = BUILDKIT / "frontend/dockerfile/shell"
EXTRACTED = json.loads((BUILDKIT / "extracted/shell-expansion.json").read_text())

ENV_VAR_TEST_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_cases() -> list[Any]:
    cases = []
    lines = (SHELL_DIR / "envVarTest").read_text(encoding="utf-8").split("\n")
    for lineno, raw in enumerate(lines, 1):
        if raw.startswith("#") or not raw.strip():
            continue
        fields = raw.strip().split("|")
        assert len(fields) == 3, f"envVarTest line {lineno}"
        tag, source, expected = (f.strip() for f in fields)
        marks = []
        if tag == "W":
            marks.append(pytest.mark.skip(reason="Windows-only: case-insensitive env names"))
        cases.append(pytest.param(source, expected, id=f"L{lineno}", marks=marks))
    return cases


@pytest.mark.parametrize(("source", "expected"), _env_var_cases())
def test_env_var_table(source: str, expected: str) -> None:
    lex = ShellLex("\\")
    if expected == "error":
        with pytest.raises(ShellExpansionError):
            lex.process_word(source, ENV_VAR_TEST_ENV)
    else:
        assert lex.process_word(source, ENV_VAR_TEST_ENV) == expected


def _words_cases() -> list[Any]:
    cases = []
    env: list[str] = []
    lines = (SHELL_DIR / "wordsTest").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            env.append(line[3:].lstrip(" "))
            continue
        fields = line.split("|")
        assert len(fields) == 2, f"wordsTest line {lineno}"
        expected = fields[1].lstrip(" ").split(",")
        cases.append(pytest.param(fields[0].strip(), list(env), expected, id=f"L{lineno}"))
    return cases


@pytest.mark.parametrize(("source", "env", "expected"), _words_cases())
def test_words_table(source: str, env: list[str], expected: list[str]) -> None:
    try:
        result = ShellLex("\\").process_words(source, env_from_list(env))
    except ShellExpansionError:
        result = ["error"]
    assert result == expected


@pytest.mark.parametrize(
    "case",
    EXTRACTED["process_word_with_matches"]["cases"],
    ids=lambda c: repr(c["input"]),
)
def test_process_word_with_matches(case: dict[str, Any]) -> None:
    lex = ShellLex("\\")
    if case.get("error"):
        with pytest.raises(ShellExpansionError):
            lex.process_word_with_matches(case["input"], case["env"])
        return
    result, matched, unmatched = lex.process_word_with_matches(case["input"], case["env"])
    assert result == case["expected"]
    assert matched == set(case["matched"])
    assert unmatched == set(case["unmatched"])


@pytest.mark.parametrize("case", EXTRACTED["mandatory_vars"]["cases"], ids=lambda c: str(c["env"]))
def test_mandatory_vars(case: dict[str, Any]) -> None:
    env = env_from_list(case["env"])
    lex = ShellLex("\\")
    if "error_contains" in case:
        with pytest.raises(ShellExpansionError, match=case["error_contains"]):
            lex.process_word(case["input"], env)
    else:
        assert lex.process_word(case["input"], env) == case["expected"]


@pytest.mark.parametrize(
    "case", EXTRACTED["release_filename"]["cases"], ids=lambda c: str(sorted(c["env"].items()))
)
def test_release_filename(case: dict[str, Any]) -> None:
    word = EXTRACTED["release_filename"]["input"]
    assert ShellLex("\\").process_word(word, case["env"]) == case["expected"]


@pytest.mark.parametrize("case", EXTRACTED["env_list_lookup"]["cases"], ids=lambda c: str(c["env"]))
def test_env_list_lookup(case: dict[str, Any]) -> None:
    env = env_from_list(case["env"])
    assert ShellLex("\\").process_word("$" + case["name"], env) == case["expected"]
