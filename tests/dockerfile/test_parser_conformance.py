"""BuildKit's own parser vectors (and real-world files with BuildKit-generated output).

Every vector under ../shared/conformance that concerns the parser runs here: the
goldens must dump byte for byte, the negative cases must fail, and the transcribed Go
test tables (heredocs, words, JSON arrays, line numbers, warnings, directives) must hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance_paths import CONFORMANCE
from pallet.dockerfile import DockerfileError, Instruction, dump, parse
from pallet.dockerfile.directives import DirectiveParser, detect_syntax, parse_directive
from pallet.dockerfile.heredoc import HeredocLexError, chomp, heredocs_from_line, parse_heredoc
from pallet.dockerfile.jsonform import NotStringArray, parse_json_array
from pallet.dockerfile.parser import parse_words

CONFORMANCE = CONFORMANCE
BUILDKIT = CONFORMANCE / "buildkit"
PARSER_DIR = BUILDKIT / "frontend/dockerfile/parser"
MISC_DIR = CONFORMANCE / "misc/dockerfiles"

if not BUILDKIT.is_dir():  # pragma: no cover - the vectors are part of the workspace
    pytest.skip(f"conformance vectors not found at {CONFORMANCE}", allow_module_level=True)


def _cases(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if (p / "Dockerfile").is_file())


GOLDENS = _cases(PARSER_DIR / "testfiles") + _cases(MISC_DIR)
NEGATIVES = _cases(PARSER_DIR / "testfiles-negative")
HEREDOCS = json.loads((BUILDKIT / "extracted/heredocs.json").read_text())
MISC = json.loads((BUILDKIT / "extracted/parser-misc.json").read_text())


def test_vector_counts() -> None:
    # FORMAT.md promises 33 positive and 4 negative cases; SOURCES.md lists 10 real files.
    assert len(_cases(PARSER_DIR / "testfiles")) == 33
    assert len(_cases(MISC_DIR)) == 10
    assert len(NEGATIVES) == 4


@pytest.mark.parametrize("case", GOLDENS, ids=[f"{p.parent.name}/{p.name}" for p in GOLDENS])
def test_golden_dump(case: Path) -> None:
    expected = (case / "result").read_bytes()
    got = dump(parse((case / "Dockerfile").read_bytes()))
    assert got.encode("utf-8", "surrogateescape") == expected


@pytest.mark.parametrize("case", NEGATIVES, ids=[p.name for p in NEGATIVES])
def test_negative_case_fails(case: Path) -> None:
    with pytest.raises(DockerfileError):
        parse((case / "Dockerfile").read_bytes())


def _heredoc_json(ins: Instruction) -> list[dict[str, Any]]:
    return [
        {
            "name": h.name,
            "file_descriptor": h.file_descriptor,
            "expand": h.expand,
            "chomp": h.chomp,
            "content": h.content,
        }
        for h in ins.heredocs
    ]


def _instruction_json(ins: Instruction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "instruction": ins.keyword,
        "flags": [f.text for f in ins.flags],
        "args": list(ins.values),
        "json_form": ins.json_form,
        "original": ins.original,
    }
    if ins.sub is not None:
        out["sub_instruction"] = _instruction_json(ins.sub)
    return out


MISC_AST = [p for p in _cases(MISC_DIR) if (p / "ast.json").is_file()]


@pytest.mark.parametrize("case", MISC_AST, ids=[p.name for p in MISC_AST])
def test_real_world_ast(case: Path) -> None:
    expected = json.loads((case / "ast.json").read_text())
    df = parse((case / "Dockerfile").read_bytes())
    assert df.escape == expected["escape_token"]
    assert (df.start_line, df.end_line) == (expected["start_line"], expected["end_line"])
    assert len(df.warnings) == len(expected["warnings"])
    assert len(df.instructions) == len(expected["instructions"])
    for ins, exp in zip(df.instructions, expected["instructions"], strict=True):
        assert (ins.start_line, ins.end_line) == (exp["start_line"], exp["end_line"])
        got = _instruction_json(ins)
        for key in ("instruction", "flags", "args", "json_form", "original"):
            assert got[key] == exp[key], (ins.start_line, key)
        if exp.get("sub_instruction"):
            sub = exp["sub_instruction"]
            assert got["sub_instruction"] == {k: sub[k] for k in got["sub_instruction"]}
        expected_docs = [
            {k: d[k] for k in ("name", "file_descriptor", "expand", "chomp", "content")}
            for d in exp.get("heredocs") or []
        ]
        assert _heredoc_json(ins) == expected_docs, ins.start_line


def test_real_world_files_cover_heredocs() -> None:
    # the buildkit Dockerfile is the one with 10 heredocs (SOURCES.md); make sure they are seen
    df = parse((MISC_DIR / "buildkit-root/Dockerfile").read_bytes())
    assert sum(len(i.heredocs) for i in df.instructions) == 10


# ---------------------------------------------------------------- heredocs.json

_EXTRACT = HEREDOCS["parse_extracts_heredoc"]


@pytest.mark.parametrize("case", _EXTRACT["cases"], ids=lambda c: str(c["child_index"]))
def test_heredoc_extraction(case: dict[str, Any]) -> None:
    df = parse(_EXTRACT["dockerfile"])
    got = _heredoc_json(df.instructions[case["child_index"]])
    expected = [
        {k: d[k] for k in ("name", "file_descriptor", "expand", "chomp", "content")}
        for d in case["heredocs"] or []
    ]
    assert got == expected


def test_json_form_is_never_a_heredoc() -> None:
    case = HEREDOCS["json_form_never_heredoc"]
    df = parse(case["dockerfile"])
    for index in case["children_without_heredocs"]:
        assert df.instructions[index].heredocs == ()
        assert df.instructions[index].json_form


_WORDS = HEREDOCS["parse_heredoc_word"]


@pytest.mark.parametrize("word", _WORDS["valid_name_EOF"])
def test_heredoc_word_valid(word: str) -> None:
    doc = parse_heredoc(word)
    assert doc is not None and doc.name == "EOF"


@pytest.mark.parametrize("word", _WORDS["invalid"])
def test_heredoc_word_invalid(word: str) -> None:
    with pytest.raises(HeredocLexError):
        parse_heredoc(word)


@pytest.mark.parametrize("word", _WORDS["not_heredoc"])
def test_heredoc_word_not_heredoc(word: str) -> None:
    assert parse_heredoc(word) is None


@pytest.mark.parametrize("case", HEREDOCS["heredocs_from_line"]["cases"], ids=lambda c: c["line"])
def test_heredocs_from_line(case: dict[str, Any]) -> None:
    assert [d.name for d in heredocs_from_line(case["line"])] == case["actual_names"]


@pytest.mark.parametrize("case", HEREDOCS["chomp"]["cases"])
def test_chomp(case: dict[str, str]) -> None:
    assert chomp(case["input"]) == case["expected"]


# ---------------------------------------------------------------- parser-misc.json


@pytest.mark.parametrize("case", MISC["parse_words"]["cases"], ids=lambda c: c["input"])
def test_parse_words(case: dict[str, Any]) -> None:
    assert [w for w, _ in parse_words(case["input"], "\\")] == case["expected"]


@pytest.mark.parametrize("case", MISC["json_arrays"]["valid"], ids=lambda c: c["input"])
def test_json_array_valid(case: dict[str, Any]) -> None:
    got = parse_json_array(case["input"])
    assert got is not None
    assert [v for v, _ in got] == case["expected"]
    # and through the parser, as the exec form of CMD
    df = parse("CMD " + case["input"])
    assert df.instructions[0].json_form
    assert list(df.instructions[0].values) == case["expected"]


@pytest.mark.parametrize("text", MISC["json_arrays"]["invalid_not_all_strings"])
def test_json_array_not_all_strings(text: str) -> None:
    with pytest.raises(NotStringArray):
        parse_json_array(text)
    with pytest.raises(DockerfileError, match="arrays must be comprised of strings only"):
        parse("RUN " + text)


def test_line_numbers() -> None:
    spec = MISC["line_numbers"]
    df = parse((BUILDKIT / spec["file"]).read_bytes())
    assert [df.start_line, df.end_line] == spec["root"]
    assert [[i.start_line, i.end_line] for i in df.instructions] == spec["children"]


def test_empty_continuation_warnings() -> None:
    spec = MISC["empty_continuation_warnings"]
    df = parse(spec["dockerfile"])
    assert len(df.warnings) == spec["expected_count"]
    for text in spec["warning_0_contains"]:
        assert text in df.warnings[0].message
    for text in spec["warning_1_contains"]:
        assert text in df.warnings[1].message
    assert spec["detail_0_contains"] in df.warnings[0].detail


def test_max_line_length() -> None:
    spec = MISC["max_line_length"]
    text = spec["dockerfile_template"].replace("{65536 x 'a'}", "a" * 65536)
    assert len(text) > 65536
    with pytest.raises(DockerfileError) as info:
        parse(text)
    assert info.value.message == spec["expected_error"]


@pytest.mark.parametrize("case", MISC["directives"]["parse_all"], ids=lambda c: c["text"])
def test_directives_parse_all(case: dict[str, Any]) -> None:
    found = DirectiveParser().parse_all(case["text"])
    assert [[d.name, d.value] for d in found] == case["expected"]


def _directive_text(case: dict[str, Any]) -> str:
    prefix = bytes.fromhex(case.get("text_hex_prefix", "")).decode()
    return prefix + str(case["text"])


def _check_found(found: Any, case: dict[str, Any]) -> None:
    if not case["found"]:
        assert found is None
        return
    assert found is not None
    assert found.ref == case["ref"]
    if "cmdline" in case:
        assert found.cmdline == case["cmdline"]
    if "line" in case:
        assert found.line == case["line"]


@pytest.mark.parametrize("case", MISC["directives"]["detect_syntax"], ids=lambda c: c["text"])
def test_detect_syntax(case: dict[str, Any]) -> None:
    _check_found(detect_syntax(_directive_text(case)), case)


@pytest.mark.parametrize(
    "case", MISC["directives"]["parse_directive_check"], ids=lambda c: c["text"]
)
def test_parse_directive_check(case: dict[str, Any]) -> None:
    _check_found(parse_directive("check", _directive_text(case)), case)
