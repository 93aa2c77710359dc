"""Behaviour of the shell-word expander beyond BuildKit's own tables."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pallet.dockerfile import shell
from pallet.dockerfile.shell import MAX_NESTING, ShellExpansionError, ShellLex

BACKSLASH = ShellLex("\\")
BACKTICK = ShellLex("`")


def test_backtick_escape_token_leaves_backslashes_alone() -> None:
    assert BACKTICK.process_word(r"C:\Users\$NAME", {"NAME": "me"}) == r"C:\Users\me"
    assert BACKTICK.process_word("a`$NAME", {"NAME": "me"}) == "a$NAME"
    assert BACKTICK.process_word('"say `"hi`""', {}) == 'say "hi"'
    assert BACKTICK.process_word('"a\\b"', {}) == "a\\b"


def test_unset_and_empty_are_different() -> None:
    assert BACKSLASH.process_word("${X-default}", {"X": ""}) == ""
    assert BACKSLASH.process_word("${X-default}", {}) == "default"
    assert BACKSLASH.process_word("${X:-default}", {"X": ""}) == "default"
    assert BACKSLASH.process_word("${X+set}", {"X": ""}) == "set"
    assert BACKSLASH.process_word("${X:+set}", {"X": ""}) == ""


def test_required_variable_error_names_variable_and_message() -> None:
    with pytest.raises(ShellExpansionError, match="VERSION: must be given"):
        BACKSLASH.process_word("v${VERSION:?must be given}", {})
    with pytest.raises(ShellExpansionError, match="VERSION: is not allowed to be empty"):
        BACKSLASH.process_word("${VERSION:?}", {"VERSION": ""})


def test_env_may_be_a_function() -> None:
    env = {"A": "1"}
    assert BACKSLASH.process_word("$A-$B", env.get) == "1-"


def test_env_names_are_case_sensitive() -> None:
    assert BACKSLASH.process_word("$path:$PATH", {"PATH": "/bin"}) == ":/bin"


def test_words_split_on_unquoted_expansion_only() -> None:
    env = {"FLAGS": "-a  -b"}
    assert BACKSLASH.process_words("run $FLAGS", env) == ["run", "-a", "-b"]
    assert BACKSLASH.process_words('run "$FLAGS"', env) == ["run", "-a  -b"]
    assert BACKSLASH.process_words("x\\ y z", env) == ["x y", "z"]


def test_empty_quoted_string_is_not_a_word() -> None:
    assert BACKSLASH.process_words('a "" b', {}) == ["a", "b"]


def test_words_split_on_go_whitespace_not_python_whitespace() -> None:
    # Go's unicode.IsSpace includes NBSP but not the ASCII separators 0x1c-0x1f
    assert BACKSLASH.process_words("a\xa0b", {}) == ["a", "b"]
    assert BACKSLASH.process_words("a\x1cb", {}) == ["a\x1cb"]


def test_heredoc_marker_keeps_blank_before_terminator() -> None:
    assert BACKSLASH.process_words("cat <<  EOF > out", {}) == ["cat", "<<  EOF", ">", "out"]


def test_text_before_nested_operator_stays_in_the_word() -> None:
    # BuildKit at 73ed682 drops "pre" here (shared-buffer regression); we keep it
    assert BACKSLASH.process_words("pre${X:-fix} next", {}) == ["prefix", "next"]


def test_matches_record_every_lookup_even_in_unused_branches() -> None:
    # the alternative word is expanded before the variable is tested, as in BuildKit,
    # so the cache key of a step depends on B here
    result, used, missing = BACKSLASH.process_word_with_matches("${A:+$B}", {"B": "b"})
    assert (result, used, missing) == ("", {"B"}, {"A"})
    result, used, missing = BACKSLASH.process_word_with_matches("'$A' \\$B", {"A": "a"})
    assert (result, used, missing) == ("$A $B", set(), set())


def test_pattern_trimming() -> None:
    env = {"F": "archive.tar.gz", "P": "/usr/local/bin"}
    assert BACKSLASH.process_word("${F%.*}", env) == "archive.tar"
    assert BACKSLASH.process_word("${F%%.*}", env) == "archive"
    assert BACKSLASH.process_word("${F#*.}", env) == "tar.gz"
    assert BACKSLASH.process_word("${F##*.}", env) == "gz"
    assert BACKSLASH.process_word("${P##*/}", env) == "bin"
    # [ ] are literal characters in BuildKit's patterns, not bracket expressions
    assert BACKSLASH.process_word("${V#[ab]}", {"V": "[ab]c"}) == "c"
    assert BACKSLASH.process_word("${V#[ab]}", {"V": "ac"}) == "ac"


def test_invalid_pattern_escape_is_an_error() -> None:
    with pytest.raises(ShellExpansionError, match="invalid escape"):
        BACKSLASH.process_word("${V#\\a}", {"V": "a"})


def test_replace_all_skips_empty_match_after_a_match_like_go() -> None:
    # Python's re.sub would give "XX" (it also replaces the empty match at the end)
    assert BACKSLASH.process_word("${V//*/X}", {"V": "abc"}) == "X"
    assert BACKSLASH.process_word("${V//b/X}", {"V": "abcb"}) == "aXcX"
    assert BACKSLASH.process_word("${V/b/X}", {"V": "abcb"}) == "aXcb"


def test_replace_all_expands_dollar_zero_like_go_replace_all_string() -> None:
    env = {"V": "foo", "R": "<$0>"}
    assert BACKSLASH.process_word("${V//o/$R}", env) == "f<o><o>"
    # the single replacement is plain concatenation
    assert BACKSLASH.process_word("${V/o/$R}", env) == "f<$0>o"


def test_skip_unset_and_raw_quotes_keep_text_for_heredoc_detection() -> None:
    lex = ShellLex(raw_quotes=True, skip_unset_env=True)
    words = lex.process_words("cat <<'EOF' $X ${Y:-z}", {})
    assert words == ["cat", "<<'EOF'", "$X", "${Y:-z}"]


def test_skip_process_quotes_treats_quotes_as_text() -> None:
    lex = ShellLex(skip_process_quotes=True)
    assert lex.process_word("'$A' \"x\"", {"A": "1"}) == "'1' \"x\""


def test_nesting_limit() -> None:
    deep_ok = "${A:-" * MAX_NESTING + "x" + "}" * MAX_NESTING
    assert BACKSLASH.process_word(deep_ok, {}) == "x"
    too_deep = "${A:-" * (MAX_NESTING + 1) + "x" + "}" * (MAX_NESTING + 1)
    with pytest.raises(ShellExpansionError, match="nested"):
        BACKSLASH.process_word(too_deep, {})


def test_error_names_the_word() -> None:
    with pytest.raises(ShellExpansionError, match=r'failed to process "echo \$\{"'):
        BACKSLASH.process_word("echo ${", {})


_ALPHABET = st.sampled_from(list("$${}{}:-+?#%/\\`'\"<  \tab_1*[]!@\n\xa0\ufeff한"))
_WORDS = st.text(_ALPHABET, max_size=40)
_ENV = st.dictionaries(st.sampled_from(["a", "b", "ab", "1", "#", "_"]), _WORDS, max_size=4)


@settings(max_examples=300, deadline=None)
@given(word=_WORDS, env=_ENV, escape=st.sampled_from(["\\", "`"]), raw=st.booleans())
def test_expansion_only_ever_raises_shell_expansion_error(
    word: str, env: dict[str, str], escape: str, raw: bool
) -> None:
    lexers = [
        ShellLex(escape),
        ShellLex(escape, raw_quotes=raw, raw_escapes=raw, skip_unset_env=raw),
        ShellLex(escape, skip_process_quotes=True),
    ]
    for lex in lexers:
        for method in (lex.process_word, lex.process_words, lex.process_word_with_matches):
            try:
                method(word, env)
            except ShellExpansionError:
                pass


@settings(max_examples=200, deadline=None)
@given(word=st.text(st.characters(blacklist_characters="$'\"\\\ufeff"), max_size=30))
def test_word_without_special_characters_is_unchanged(word: str) -> None:
    assert BACKSLASH.process_word(word, {"A": "x"}) == word
    assert BACKSLASH.process_word_with_matches(word, {})[0] == word


def test_many_stars_against_a_long_value_finish() -> None:
    # a backtracking regex engine needs ~300**4 steps here; Go's (and ours) is linear
    value = "a" * 300
    assert BACKSLASH.process_word("${V##*a*a*a*a*b}", {"V": value}) == value
    assert BACKSLASH.process_word("${V//*a*a*a*a*b/x}", {"V": value}) == value
    assert BACKSLASH.process_word("${V##*a*a*a*a*b}", {"V": value + "b"}) == ""


def _reference_regex(elements: tuple[object, ...], greedy: bool) -> re.Pattern[str]:
    """The regex BuildKit builds for these elements, run by Python's backtracking re
    (leftmost-first, like Go's engine)."""
    star = ".*" if greedy else ".*?"
    parts = [
        star if e == shell._STAR else "." if e == shell._ANY else re.escape(str(e))
        for e in elements
    ]
    return re.compile("".join(parts))


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.text(st.sampled_from(list("*?ab\n")), max_size=6),
    value=st.text(st.sampled_from(list("aab\n")), max_size=10),
    greedy=st.booleans(),
    start=st.integers(0, 10),
)
def test_pattern_search_agrees_with_a_backtracking_engine(
    pattern: str, value: str, greedy: bool, start: int
) -> None:
    elements = shell._parse_pattern(pattern)
    search = shell._PatternSearch(elements, value, greedy=greedy)
    regex = _reference_regex(elements, greedy)
    start = min(start, len(value))
    anchored = regex.match(value, start)
    assert search.match_at(start) == (anchored.end() if anchored else None)
    found = regex.search(value, start)
    assert search.search(start) == (found.span() if found else None)


def test_pattern_too_complex_for_its_value_is_refused() -> None:
    word = "${V#" + "*a" * 1000 + "}"
    with pytest.raises(ShellExpansionError, match="too complex"):
        BACKSLASH.process_word(word, {"V": "a" * 300_000})
