"""The .dockerignore reader and matcher: what a user writes and what gets excluded."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallet.dockerfile import ignore
from pallet.dockerfile.ignore import (
    IgnorePatternError,
    PatternMatcher,
    clean_path,
    read_ignore_file,
)


def test_read_comments_blank_lines_crlf_and_bom() -> None:
    data = b"\xef\xbb\xbf# comment\r\nnode_modules\r\n\r\n  *.log  \n # not a comment\n"
    assert read_ignore_file(data) == ["node_modules", "*.log", "# not a comment"]


def test_read_cleans_patterns_and_drops_one_leading_slash() -> None:
    data = "/build/\n! /dist/../keep.txt\n./a//b/.\n/\n"
    assert read_ignore_file(data) == ["build", "!keep.txt", "a/b", "/"]


def test_read_refuses_a_line_longer_than_go_scanner_buffer() -> None:
    with pytest.raises(IgnorePatternError, match="line 2"):
        read_ignore_file("ok\n" + "a" * 70_000)


def test_go_clean() -> None:
    assert clean_path("") == "."
    assert clean_path("a/../..") == ".."
    assert clean_path("//a//b/") == "/a/b"
    assert clean_path("/../x") == "/x"


def test_directory_pattern_excludes_everything_below_it() -> None:
    matcher = PatternMatcher(read_ignore_file("docs/\n"))
    assert matcher.matches("docs")
    assert matcher.matches("docs/guide/index.md")
    assert not matcher.matches("docsite/index.md")


def test_star_stays_in_one_directory_and_double_star_crosses() -> None:
    assert PatternMatcher(["*.go"]).matches("main.go")
    assert not PatternMatcher(["*.go"]).matches("cmd/main.go")
    assert PatternMatcher(["**/*.go"]).matches("cmd/tool/main.go")
    assert not PatternMatcher(["dir/**"]).matches("dir")


def test_exception_re_includes_and_later_patterns_win() -> None:
    keep = PatternMatcher(["*.md", "!README.md"])
    assert keep.matches("CHANGES.md")
    assert not keep.matches("README.md")
    again = PatternMatcher(["*.md", "!README.md", "README*"])
    assert again.matches("README.md")
    assert keep.exclusions
    assert not PatternMatcher(["*.md"]).exclusions


def test_matching_pattern_names_the_pattern_that_excluded() -> None:
    matcher = PatternMatcher(["build", "*.tmp", "!keep.tmp"])
    assert matcher.matching_pattern("build/out/app") == "build"
    assert matcher.matching_pattern("x.tmp") == "*.tmp"
    assert matcher.matching_pattern("keep.tmp") is None
    assert matcher.matching_pattern("src/app.py") is None


def test_context_root_is_never_excluded() -> None:
    assert not PatternMatcher(["**"]).matches(".")
    assert PatternMatcher(["**"]).matches("anything")


def test_bad_patterns_are_refused_with_the_pattern_named() -> None:
    with pytest.raises(IgnorePatternError, match='"!"'):
        PatternMatcher(["!"])
    with pytest.raises(IgnorePatternError, match=r"'a\['"):
        PatternMatcher(["a["])


def test_regex_level_error_surfaces_only_when_the_pattern_is_consulted() -> None:
    # [Local-Only] is a valid glob but an invalid Go regex range (l-O); Docker only
    # fails when the pattern is evaluated, which "**" prevents here
    assert PatternMatcher(["**", "[Local-Only]"]).matches("x")
    with pytest.raises(IgnorePatternError, match="Local-Only"):
        PatternMatcher(["[Local-Only]"]).matches("x")


def test_go_regex_constructs_reached_through_patterns_mean_what_they_mean_in_go() -> None:
    # patternmatcher passes [...] and \x straight into a Go regex
    assert PatternMatcher(["[[:digit:]].txt"]).matches("7.txt")
    assert not PatternMatcher(["[[:digit:]].txt"]).matches("d.txt")
    assert PatternMatcher(["a[^b]c"]).matches("a\nc")
    assert PatternMatcher(["\\x41*"]).matches("Abc")


def test_walk_mode_follows_buildkit_walk_not_parent_rematching() -> None:
    # BuildKit's walk feeds each directory's per-pattern results to its children;
    # a pattern skipped at "d" is not re-tried against "d" for "d/e"
    matcher = PatternMatcher(["d", "!d/e", "d"])
    _, state = matcher.matches_in_walk("d", None)
    assert matcher.matches_in_walk("d/e", state)[0] is False
    assert matcher.matches("d/e") is True


_GLOB = st.text(st.sampled_from(list("*?[]^!-\\/.ab:{}$()x0 \n")), max_size=12)


@settings(max_examples=400, deadline=None)
@given(patterns=st.lists(_GLOB, max_size=3), path=_GLOB)
def test_matcher_only_ever_raises_ignore_pattern_error(patterns: list[str], path: str) -> None:
    try:
        matcher = PatternMatcher(patterns)
        matcher.matches(path)
        matcher.matches_in_walk(path, None)
        read_ignore_file("\n".join(patterns))
    except IgnorePatternError:
        pass


def test_many_wildcards_against_a_long_name_finish() -> None:
    # a backtracking engine needs ~300**7 steps here; Go's (and ours) is linear
    matcher = PatternMatcher(["*a*a*a*a*a*a*a*b"])
    assert not matcher.matches("a" * 300)
    assert matcher.matches("a" * 300 + "b")
    assert not matcher.matches("a" * 300 + "/b")


_REGEX_GLOB = st.text(st.sampled_from(list("*?ab/[]^-\\.x")), max_size=10)
_NAMES = st.text(st.sampled_from(list("ab/.x-^\n")), max_size=12)


@settings(max_examples=300, deadline=None)
@given(glob=_REGEX_GLOB, names=st.lists(_NAMES, max_size=6))
def test_linear_engine_agrees_with_python_re(glob: str, names: list[str]) -> None:
    _, go_regex = ignore._classify(glob)
    try:
        items = ignore._parse_go_regex(go_regex)
        python = re.compile("".join(ignore._python_regex(node) for node in items), re.ASCII)
    except (ignore._GoRegexError, re.error):
        return
    nfa = ignore._Nfa(items)
    for name in names:
        assert nfa.matches(name) == bool(python.match(name)), (glob, go_regex, name)


_SEGMENT = st.sampled_from(["a", "b", "ab", "a.b", "x*"])
_WALK_PATTERN = st.builds(
    lambda neg, parts: ("!" if neg else "") + "/".join(parts),
    st.booleans(),
    st.lists(
        st.sampled_from(["a", "b", "ab", "*", "**", "a*", "?b", "[ab]", "a.b"]),
        min_size=1,
        max_size=3,
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    patterns=st.lists(_WALK_PATTERN, max_size=5),
    segments=st.lists(_SEGMENT, min_size=1, max_size=4),
)
def test_directory_matchers_agree_with_walk_matching(
    patterns: list[str], segments: list[str]
) -> None:
    matcher = PatternMatcher(patterns)
    state = None
    directory = matcher.directory("")
    for depth in range(1, len(segments) + 1):
        path = "/".join(segments[:depth])
        expected, state = matcher.matches_in_walk(path, state)
        excluded, hits = directory.match(path)
        assert excluded == expected
        assert hits == tuple(i for i, hit in enumerate(state) if hit)
        directory = matcher.directory(path, hits)
