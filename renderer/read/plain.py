"""Paragraph text as the readers hand it on: one line per line of verse or row cell, "\n" between.

A line break inside a paragraph (`<br>` in verse, a Markdown hard break, the cells of a table row)
is kept as LINE_BREAK, so that the text stage can give it a pause; every other run of white space
in the source, its own newlines included, is one space.
"""
from __future__ import annotations

import re

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
