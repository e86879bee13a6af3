"""Scripts and casts: the script reader, the cast's checks through the real CLI, chunks in each
speaker's voice, and `render inspect`'s speakers. No model is loaded."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from renderer.book import BookError
from renderer.cast import NARRATE, CastError, load_cast
from renderer.cli import main
from renderer.inspect import book_chunks, inspect_book
from renderer.read import read_book
from renderer.read.plain import LINE_BREAK
from renderer.read.script import DIRECTION, parse_script
from renderer.speech.voices import resolve_voice
from renderer.text.chunk import chunk_book

SAMPLE = Path(__file__).parents[1] / "samples" / "two-scenes.script"
ANDREW, KATIE = resolve_voice("en:andrew"), resolve_voice("en:katie")
VOICE = resolve_voice("en")

PLAY = """\
+++
title = "Elsinore"
author = ["Will", "Anon"]
[cast]
HAMLET = "en:andrew"
"Horatio" = "en:katie"
+++
HAMLET: Before any heading.
# Act 1
##   Scene 1
[Enter HAMLET,
   reading]
   HAMLET  :   To be, or not to be,
\tthat is the question.

Whether 'tis nobler: in the mind.
[He pauses]   And then   some.
Rosencrantz   &Guildenstern:My lord! [bowing] Indeed.
HORATIO:
At 10:30 we go.
#Scene 2
[Exit all]
"""


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def outline(book):
    return [(c.title, [(p.speaker, p.text) for p in c.paragraphs]) for c in book.chapters]


def assert_one_line_error(result, *needles):
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert all(needle in errors[0] for needle in needles), errors[0]


# the reader ------------------------------------------------------------------------------------

@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_script_reads_speeches_directions_and_headings(tmp_path, newline):
    script = parse_script(write(tmp_path / "elsinore.script", PLAY, newline))
    book = script.book
    assert (book.title, book.author, book.language) == ("Elsinore", "Will, Anon", "")
    assert outline(book) == [
        ("Elsinore", [("HAMLET", "Before any heading.")]),  # before the first heading: the title's
        ("Act 1: Scene 1", [  # headings with nothing between them make one title
            (DIRECTION, "Enter HAMLET, reading"),
            ("HAMLET", f"To be, or not to be, that is the question.{LINE_BREAK}Whether 'tis nobler: in the mind."),
            (DIRECTION, "He pauses"),
            ("HAMLET", "And then some."),  # the speech goes on after the direction
            ("Rosencrantz & Guildenstern", "My lord! Indeed."),  # an inline direction is left out
            ("HORATIO", "At 10:30 we go."),  # a tag alone, its text on the next line; a time is no tag
        ]),
        ("Scene 2", [(DIRECTION, "Exit all")]),
    ]
    assert script.first_lines == {"HAMLET": 8, "Rosencrantz & Guildenstern": 18, "HORATIO": 19}
    assert (script.front_matter_line, script.front_matter.splitlines()[0]) == (2, 'title = "Elsinore"')


def test_script_kinds_by_extension_and_by_name(tmp_path):
    text = "ANN: Hello there.\nBOB: Hi.\n"
    assert outline(read_book(write(tmp_path / "a.play", text))) == [("a", [("ANN", "Hello there."), ("BOB", "Hi.")])]
    as_text = write(tmp_path / "a.txt", text)
    assert read_book(as_text).chapters[0].paragraphs[0].speaker is None  # .txt stays Markdown
    assert outline(read_book(as_text, kind="script")) == outline(read_book(tmp_path / "a.play"))
    with pytest.raises(BookError, match="unknown input kind 'pdf'"):
        read_book(as_text, kind="pdf")


@pytest.mark.parametrize("text, line, problem", [
    ("Hello, with nobody speaking.\n", 1, "text without a speaker"),
    ("ANN: Hi.\n# Two\nStill Ann?\n", 3, "text without a speaker"),  # a heading ends the speech
    ("ANN: Hi.\n\n[Exit\nANN, slowly\n", 3, "never closed"),
    ("+++\ntitle = 'A'\n", 1, "never closed"),
    ("+++\ntitle = 'A'\nauthor = \n+++\nANN: Hi.\n", 3, "not valid TOML"),
    ("+++\ntitle = 3\n+++\nANN: Hi.\n", 2, "title must be text"),
    ("ANN: Hi.\n#   \n", 2, "a heading with no title"),
])
def test_script_errors_name_the_line(tmp_path, text, line, problem):
    path = write(tmp_path / "bad.script", text)
    with pytest.raises(BookError) as caught:
        read_book(path)
    assert str(caught.value).startswith(f"{path}, line {line}: ") and problem in str(caught.value)
    assert "\n" not in str(caught.value)


def test_script_without_speeches(tmp_path):
    with pytest.raises(BookError, match="no speeches"):
        read_book(write(tmp_path / "dir.script", "# One\n[Silence.]\n"))


# the cast -------------------------------------------------------------------------------------

def test_cast_from_front_matter_and_side_file(tmp_path):
    book = read_book(write(tmp_path / "elsinore.script", PLAY))
    with pytest.raises(CastError, match="line 18: no voice for speaker 'Rosencrantz & Guildenstern'"):
        load_cast(book, VOICE)
    side = write(tmp_path / "cast.toml", 'rosencrantz = "en:katie"\nHAMLET = "en:katie"\ndefault = "en:andrew"\n')
    cast = load_cast(book, VOICE, side)
    assert cast.voice_for("HAMLET") == KATIE  # the side file wins
    assert cast.voice_for("Horatio") == KATIE  # any case
    assert cast.voice_for("Rosencrantz & Guildenstern") == KATIE  # the first speaker's voice
    assert cast.voice_for("Osric") == ANDREW  # the default
    assert cast.narrator == ANDREW and cast.voice_for(DIRECTION) == ANDREW  # no narrator: the default
    assert load_cast(read_book(SAMPLE), ANDREW).narrator == KATIE
    assert load_cast(read_book(tmp_path / "elsinore.script"), VOICE, side, model="m").voice_for("HAMLET").model == "m"
    markdown = write(tmp_path / "book.md", "# One\n\nText.\n")
    assert load_cast(read_book(markdown), VOICE) is None


@pytest.mark.parametrize("cast, where, line, problem", [
    ('HAMLET = "en:bob"', "t.script", 6, "no speaker 'bob'"),  # in the front matter
    ('HAMLET = "xx"', "cast.toml", 1, "unknown voice 'xx'"),
    ('HAMLET = en:andrew', "cast.toml", 1, "not valid TOML"),
    ('HAMLET = 3', "cast.toml", 1, "HAMLET: expected a voice in quotes"),
    ('OPHELIA = "en:katie"\n\nophelia = "en:andrew"\nHAMLET = "en"', "cast.toml", 3, "cast twice"),
    ('OPHELIA = "en:katie"', "t.script", 1, "no voice for speaker 'HAMLET'"),
])
def test_cast_errors_are_one_line_before_any_model(tmp_path, cast, where, line, problem):
    text = "HAMLET: Words, words, words.\n"
    in_script = line == 6
    if in_script:
        text = f"+++\ntitle = 'T'\n\n[cast]\nOPHELIA = 'en:katie'\n{cast}\n+++\n{text}"
    script = write(tmp_path / "t.script", text)
    side = [] if in_script else ["--cast", write(tmp_path / "cast.toml", cast)]
    needle = f"{tmp_path / where}, line {line}: "
    assert_one_line_error(run("inspect", script, *side), needle, problem)
    assert_one_line_error(run(script, *side, "--out", tmp_path / "out"), needle, problem)
    assert not (tmp_path / "out").exists()


def test_missing_cast_file(tmp_path):
    script = write(tmp_path / "t.script", "ANN: Hi.\n")
    assert_one_line_error(run("inspect", script, "--cast", tmp_path / "nope.toml"), "nope.toml: no such cast file")


# chunks -----------------------------------------------------------------------------------------

def test_chunks_go_to_each_speakers_voice(tmp_path):
    book = read_book(SAMPLE)
    chunks = chunk_book(book, VOICE, load_cast(book, VOICE))
    speakers = {(c.index, n): p.speaker for c in book.chapters for n, p in enumerate(c.paragraphs)}
    voices = {"KEEPER": ANDREW, "MARA": KATIE, "BOY": ANDREW, "KEEPER & MARA": ANDREW}
    for chunk in chunks:
        if chunk.is_title:
            assert chunk.voice == KATIE  # the narrator
        else:
            assert chunk.voice == voices[speakers[chunk.chapter, chunk.paragraph]], chunk
    assert DIRECTION not in {speakers[c.chapter, c.paragraph] for c in chunks if not c.is_title}  # skipped
    # Short speeches would pack into one chunk if they were one paragraph: a speaker change ends a chunk.
    assert [c.text for c in chunks if c.chapter == 2 and not c.is_title] == [
        "Is this the lighthouse? We saw your light all night.", "It is.",
        "Come up. There is bread, and the kettle is warm."]
    assert all(c.last_in_paragraph for c in chunks)
    assert {c.voice for c in chunk_book(book, VOICE)} == {VOICE}  # no cast: one voice, as for books


def test_narrated_directions_in_the_narrators_voice():
    book = read_book(SAMPLE)
    chunks = chunk_book(book, VOICE, load_cast(book, VOICE, directions=NARRATE))
    first = [c for c in chunks if c.chapter == 1]
    assert (first[1].paragraph, first[1].voice) == (0, KATIE)
    assert first[1].text.startswith("Night. Wind against the glass.")


# inspect ----------------------------------------------------------------------------------------

def test_inspect_lists_speakers(tmp_path):
    result = run("inspect", SAMPLE, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [list(s) for s in data["speakers"]] == [["name", "voice", "lines", "words", "seconds"]] * 3
    # The joint "KEEPER & MARA: It is." counts for each of them.
    assert [(s["name"], s["voice"], s["lines"], s["words"]) for s in data["speakers"]] == [
        ("KEEPER", "en:andrew", 3, 15 + 9 + 2), ("MARA", "en:katie", 3, 13 + 10 + 2), ("BOY", "en:andrew", 1, 10)]
    book = read_book(SAMPLE)
    cast = load_cast(book, VOICE)
    chunks = book_chunks(book, VOICE, cast)
    boy = [c for c in chunks[2] if c.text.startswith("Is this")]
    assert data["speakers"][2]["seconds"] == round(sum(c.seconds for c in boy), 1)
    assert data == inspect_book(book, VOICE, cast)

    narrated = json.loads(run("inspect", SAMPLE, "--json", "--directions", "narrate").stdout)
    assert (narrated["speakers"][0]["name"], narrated["speakers"][0]["voice"]) == (DIRECTION, "en:katie")
    assert narrated["words"] > data["words"]

    table = run("inspect", SAMPLE).stdout.splitlines()
    assert table[-4].split() == ["lines", "words", "time", "voice", "speaker"]
    assert table[-3].split()[:2] == ["3", "26"] and table[-3].split()[-2:] == ["en:andrew", "KEEPER"]
    assert "speakers" not in json.loads(run("inspect", write(tmp_path / "b.md", "# B\n\nText.\n"), "--json").stdout)
