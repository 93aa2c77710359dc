"""Parser behaviour beyond BuildKit's goldens: positions, errors, quirks, hostile bytes."""

from __future__ import annotations

import pytest

from pallet.dockerfile import DockerfileError, Position, dump, parse
from pallet.errors import PalletError


def _dump(text: str | bytes) -> str:
    return dump(parse(text))


# ---------------------------------------------------------------- directives


def test_escape_directive_backtick_changes_continuation() -> None:
    text = "# escape=`\nFROM windows\nRUN dir C:\\ `\n  /b\n"
    df = parse(text)
    assert df.escape == "`"
    assert df.directive("escape") == "`"
    assert _dump(text) == '(from "windows")\n(run "dir C:\\\\   /b")\n'


def test_directive_after_comment_is_an_ordinary_comment() -> None:
    df = parse("# hello\n# escape=`\nFROM a\n")
    assert df.escape == "\\"
    assert df.directives == ()


def test_directive_after_blank_line_is_ignored() -> None:
    df = parse("\n# syntax=docker/dockerfile:1\nFROM a\n")
    assert df.directive("syntax") is None


def test_all_three_directives_with_positions() -> None:
    df = parse("# syntax = docker/dockerfile:1\n#CHECK=skip=all\n# escape=\\\nFROM a\n")
    assert [(d.name, d.value, d.line) for d in df.directives] == [
        ("syntax", "docker/dockerfile:1", 1),
        ("check", "skip=all", 2),
        ("escape", "\\", 3),
    ]


def test_repeated_directive_is_an_error_with_its_line() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("# escape=`\n# escape=`\nFROM a\n")
    assert info.value.line == 2
    assert "only one escape parser directive" in str(info.value)


def test_invalid_escape_value() -> None:
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM a\n")


# ---------------------------------------------------------------- lines


def test_comment_and_blank_lines_inside_continuation() -> None:
    df = parse("RUN a \\\n# inside\n\n  b\nFROM c\n")
    assert [(i.start_line, i.end_line) for i in df.instructions] == [(1, 4), (5, 5)]
    assert df.instructions[0].values == ("a   b",)
    assert len(df.warnings) == 1  # the blank line, not the comment
    assert df.warnings[0].line == 4


def test_trailing_whitespace_after_escape_still_continues() -> None:
    assert _dump("RUN a \\  \t\nb\n") == '(run "a b")\n'


def test_escaped_escape_does_not_continue() -> None:
    assert _dump("RUN a\\\\\nCMD b\n") == '(run "a\\\\\\\\")\n(cmd "b")\n'


def test_crlf_line_endings() -> None:
    assert _dump("FROM a\r\nRUN b \\\r\n c\r\n") == '(from "a")\n(run "b  c")\n'


def test_bom_is_dropped() -> None:
    df = parse(b"\xef\xbb\xbf# escape=`\nFROM a\n")
    assert df.escape == "`"
    assert df.instructions[0].position == Position(2, 1)


def test_keywords_are_case_insensitive() -> None:
    df = parse("from a AS b\nRuN echo\n")
    assert [i.command for i in df.instructions] == ["from", "run"]
    assert [i.keyword for i in df.instructions] == ["from", "RuN"]


# ---------------------------------------------------------------- positions


def test_positions_of_keyword_flags_and_args() -> None:
    df = parse("FROM a\n  COPY --from=b  --chown=1:2 src \\\n     dst\n")
    copy = df.instructions[1]
    assert copy.position == Position(2, 3)
    assert [(f.name, f.value, f.position) for f in copy.flags] == [
        ("from", "b", Position(2, 8)),
        ("chown", "1:2", Position(2, 18)),
    ]
    assert [(a.value, a.position) for a in copy.args] == [
        ("src", Position(2, 30)),
        ("dst", Position(3, 6)),
    ]


def test_positions_of_json_elements_and_env_pairs() -> None:
    df = parse('CMD ["a", "b"]\nENV k=v x=y\n')
    cmd, env = df.instructions
    assert [a.position.column for a in cmd.args] == [6, 11]
    assert [(a.value, a.position.column) for a in env.args] == [
        ("k", 5),
        ("v", 7),
        ("=", 6),
        ("x", 9),
        ("y", 11),
        ("=", 10),
    ]


# ---------------------------------------------------------------- flags and forms


def test_flags_quotes_and_double_dash() -> None:
    assert _dump('COPY --chown="a b" x y\n') == '(copy ["--chown=a b"] "x" "y")\n'
    assert _dump("COPY -- --foo bar\n") == '(copy "--foo" "bar")\n'
    assert _dump("RUN --mount=type=cache,target=/x --network=none make\n") == (
        '(run ["--mount=type=cache,target=/x" "--network=none"] "make")\n'
    )


def test_non_ascii_flag_is_mangled_like_go() -> None:
    # Go appends each UTF-8 byte of a flag as a code point of its own
    assert _dump("COPY --chown=é x y\n") == '(copy ["--chown=Ã©"] "x" "y")\n'


def test_invalid_json_falls_back_to_shell_form() -> None:
    for text in ('["a", "b"', "['a']", '["a"] extra', '["a", 1e999]', "[NaN]"):
        df = parse("RUN " + text)
        assert not df.instructions[0].json_form
        assert df.instructions[0].values == (text,)


def test_json_unicode_escapes_follow_go() -> None:
    df = parse('CMD ["\\ud83d\\ude00", "\\ud800x"]')
    assert df.instructions[0].values == ("\U0001f600", "\ufffdx")


def test_deep_json_nesting_is_not_a_crash() -> None:
    deep = "[" * 20000 + "]" * 20000
    df = parse("CMD " + deep)  # deeper than Go's limit: shell form
    assert df.instructions[0].values == (deep,)
    with pytest.raises(DockerfileError, match="strings only"):
        parse("CMD " + "[" * 50 + "]" * 50)


def test_env_legacy_and_new_forms() -> None:
    assert _dump("ENV a b c\n") == '(env "a" "b c" "")\n'
    assert _dump('ENV a="x y" b=z\n') == '(env "a" "\\"x y\\"" "=" "b" "z" "=")\n'
    with pytest.raises(DockerfileError, match="can't find = in"):
        parse("ENV a=b c\n")
    with pytest.raises(DockerfileError, match="LABEL must have two arguments"):
        parse("LABEL only\n")


def test_arg_keeps_quotes_in_words() -> None:
    assert _dump('ARG a b="1 2" c\n') == '(arg "a" "b=\\"1 2\\"" "c")\n'


def test_onbuild_nests_and_unknown_keeps_one_empty_arg() -> None:
    assert _dump("ONBUILD RUN echo hi\n") == '(onbuild (run "echo hi"))\n'
    assert _dump("ONBUILD\n") == "(onbuild)\n"
    assert _dump("FOO bar baz\n") == '(foo "")\n'


def test_healthcheck_forms() -> None:
    assert _dump("HEALTHCHECK NONE\n") == '(healthcheck "NONE")\n'
    assert _dump('HEALTHCHECK --retries=3 CMD ["curl", "x"]\n') == (
        '(healthcheck ["--retries=3"] "CMD" "curl" "x")\n'
    )


def test_empty_continuation_at_eof_parses_like_buildkit() -> None:
    df = parse("FROM a\n\\\n")
    assert df.instructions[1].keyword == ""
    assert _dump("FROM a\n\\\n") == '(from "a")\n("")\n'


# ---------------------------------------------------------------- heredocs


def test_heredoc_body_lines_belong_to_the_instruction() -> None:
    text = "FROM a\nRUN <<EOF bash\necho $HOME\n  EOF\nEOF\nCMD x\n"
    df = parse(text)
    run = df.instructions[1]
    assert (run.start_line, run.end_line) == (2, 5)
    assert run.heredocs[0].content == "echo $HOME\n  EOF\n"
    assert run.heredocs[0].start_line == 3
    assert _dump(text) == '(from "a")\n(run "<<EOF bash")\n(cmd "x")\n'


def test_heredoc_chomp_and_quoted_terminator() -> None:
    df = parse("RUN <<-'END'\n\techo $X\n\tEND\n")
    doc = df.instructions[0].heredocs[0]
    assert (doc.name, doc.expand, doc.chomp) == ("END", False, True)
    assert doc.content == "\techo $X\n"
    assert doc.body() == "echo $X\n"


def test_two_heredocs_as_copy_sources() -> None:
    df = parse("COPY <<A <<B /dst/\na\nA\nb\nB\n")
    assert [(d.name, d.content) for d in df.instructions[0].heredocs] == [
        ("A", "a\n"),
        ("B", "b\n"),
    ]


def test_heredoc_only_for_run_copy_add_in_shell_form() -> None:
    df = parse('CMD <<EOF\nRUN ["<<EOF"]\n')
    assert all(i.heredocs == () for i in df.instructions)
    assert len(df.instructions) == 2


def test_heredoc_under_onbuild() -> None:
    df = parse("ONBUILD RUN <<EOF\nls\nEOF\n")
    assert df.instructions[0].heredocs[0].content == "ls\n"


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError) as info:
        parse("FROM a\nRUN <<EOF\necho\n")
    assert info.value.message == "unterminated heredoc"
    assert (info.value.line, info.value.column) == (2, 1)


# ---------------------------------------------------------------- errors


def test_error_is_a_pallet_error_with_file_name_and_position() -> None:
    with pytest.raises(PalletError) as info:
        parse("FROM a\nENV X\n", filename="app/Dockerfile")
    err = info.value
    assert isinstance(err, DockerfileError)
    assert (err.line, err.column) == (2, 5)
    assert str(err) == "app/Dockerfile:2:5: ENV must have two arguments"
    err.filename = "other"
    assert str(err).startswith("other:2:5: ")


def test_file_without_instructions() -> None:
    for text in ("", "\n\n", "# just a comment\n", "   \n# x\n"):
        with pytest.raises(DockerfileError, match="file with no instructions"):
            parse(text)


def test_overlong_line() -> None:
    with pytest.raises(DockerfileError, match="max allowed size of 65535") as info:
        parse("FROM a\nRUN " + "x" * 70000 + "\n")
    assert info.value.line == 2
    parse("FROM a\nRUN " + "x" * (65535 - 4) + "\n")  # exactly at the limit is fine


@pytest.mark.parametrize(
    "data",
    [
        b"FROM a\nRUN \xff\xfe\x00\n",
        b"\x00\x00\x00",
        b"FROM \xc3\x28 AS x\nENV a=\xe2\x82 b=c\n",
        b"LABEL \xa0k v\n",
        b"HEALTHCHECK CMD\xc2\xa0x\n",
        b"RUN <<\xff\n\xff\n",
    ],
)
def test_hostile_bytes_parse_or_fail_cleanly(data: bytes) -> None:
    try:
        out = dump(parse(data))
    except DockerfileError:
        return
    assert out.endswith(")\n")


def test_invalid_utf8_is_dumped_as_go_does() -> None:
    # raw invalid bytes print as \xHH; inside ENV words Go decodes them to U+FFFD
    assert _dump(b"RUN \xff\n") == '(run "\\xff")\n'
    assert _dump(b"ENV a=\xff\n") == '(env "a" "\ufffd" "=")\n'
    assert _dump(b"HEALTHCHECK CMD\xc2\xa0x\n") == '(healthcheck "CMD\\xc2" "x")\n'


def test_str_and_bytes_input_agree() -> None:
    text = "FROM a\nRUN echo ☃ \\\n  done\n"
    assert parse(text) == parse(text.encode())


def test_dump_quotes_like_go_strconv() -> None:
    # printable (Unicode 15.0, as in BuildKit's Go) stays literal; other runes are escaped
    assert _dump("RUN a\u00a0b \U0001f6dc \u0cf3\n") == '(run "a\\u00a0b \U0001f6dc \u0cf3")\n'
    assert _dump("RUN \u0378 \u200b \U000e0001 \x7f\n") == (
        '(run "\\u0378 \\u200b \\U000e0001 \\x7f")\n'
    )


def test_character_split_by_a_continuation_is_joined_as_bytes() -> None:
    # Go joins the bytes of continued lines; the halves of "é" meet again
    assert _dump(b"RUN a\xc3\\\n\xa9b\n") == '(run "a\u00e9b")\n'
