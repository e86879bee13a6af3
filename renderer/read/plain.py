"""Paragraph text as the readers hand it on: one line per line of verse or row cell, "\n" between.

A line break inside a paragraph (`<br>` in verse, a Markdown hard break, the cells of a table row)
is kept as LINE_BREAK, so that the text stage can give it a pause; every other run of white space
in the source, its own newlines included, is one space.
"""
from __future__ import annotations

import re
from pathlib import Path

from renderer.book import RendererError

LINE_BREAK = "\n"  # a pause inside a paragraph, shorter than the one between paragraphs
WORD = re.compile(r"\w+(?:['\u2019]\w+)*")  # "don't" is one word, "sea-gazers" two


def source_spaces(text: str | None) -> str:
    """Source text with its own line breaks as spaces: only the markup makes LINE_BREAKs."""
    return (text or "").replace(LINE_BREAK, " ")


def tidy_lines(text: str) -> str:
    """White space collapsed inside each line; empty lines, and spaces at the ends, dropped."""
    lines = (" ".join(line.split()) for line in text.split(LINE_BREAK))
    return LINE_BREAK.join(line for line in lines if line)


def count_words(text: str) -> int:
    """Words as a reader counts them: runs of letters and digits ("1851" is one)."""
    return sum(1 for _ in WORD.finditer(text))


def read_user_file(path: Path, what: str, error: type[RendererError]) -> str:
    """The text of a file the user names beside the book (a lexicon, a cast), UTF-8.

    Raises `error`, one line naming the file, when it is missing, unreadable or not UTF-8.
    """
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not UTF-8 text (bad byte at offset {problem.start})") from None
    except OSError as problem:
        raise error(f"{path}: cannot read the {what} ({problem.strerror or problem})") from None
