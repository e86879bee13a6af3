"""Scripts: the script reader. No model is loaded."""
from __future__ import annotations

from pathlib import Path

import pytest

from renderer.book import BookError
from renderer.read import read_book
from renderer.read.plain import LINE_BREAK
from renderer.read.script import DIRECTION, parse_script

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


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def outline(book):
    return [(c.title, [(p.speaker, p.text) for p in c.paragraphs]) for c in book.chapters]


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
