"""A user's pronunciation lexicon: whole-word replacements applied to a book before chunking.

One entry a line, `written = spoken` ("Ishmael = ISH-may-el", "Colonel = kernel"); blank lines and
lines starting with `#` are skipped. An entry written in lower case matches any case and keeps
the case it replaces ("colonel = kernel" makes "Colonel" "Kernel"); one with a capital matches
exactly that spelling ("US = United States" leaves "us" alone).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

from renderer.book import Book, RendererError
from renderer.read.plain import read_user_file

SEPARATOR = "="
COMMENT = "#"


class LexiconError(RendererError):
    """A lexicon file that cannot be read: one line naming the file and the line."""


@dataclasses.dataclass(frozen=True)
class Lexicon:
    exact: dict[str, str]  # written with a capital: this spelling only
    any_case: dict[str, str]  # written in lower case: any case, keyed case-folded

    def apply(self, text: str) -> str:
        """`text` with every whole-word entry replaced, longest entries first."""
        if not self.exact and not self.any_case:
            return text
        return self._pattern.sub(self._replace, text)

    @property
    def _pattern(self) -> re.Pattern:
        alternatives = [(w, re.escape(w)) for w in self.exact]
        alternatives += [(w, f"(?i:{re.escape(w)})") for w in self.any_case]
        alternatives.sort(key=lambda pair: len(pair[0]), reverse=True)
        return _compiled("|".join(pattern for _, pattern in alternatives))

    def _replace(self, match: re.Match) -> str:
        written = match.group()
        if written in self.exact:
            return self.exact[written]
        return _same_case(self.any_case[written.casefold()], written)


@functools.cache
def _compiled(alternation: str) -> re.Pattern:
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")


def read_lexicon(path: Path) -> Lexicon:
    """Read a lexicon file (UTF-8, one `written = spoken` a line).

    Raises LexiconError, one line naming the file (and line), when it is missing, not UTF-8, or
    has a line without `=` or with nothing before it.
    """
    path = Path(path)
    lines = read_user_file(path, "lexicon", LexiconError).splitlines()
    exact: dict[str, str] = {}
    any_case: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith(COMMENT):
            continue
        written, separator, spoken = (" ".join(part.split()) for part in line.partition(SEPARATOR))
        if not separator or not written:
            raise LexiconError(f"{path}, line {number}: expected 'written {SEPARATOR} spoken', "
                               f"got {line.strip()!r}")
        if written == written.lower():
            any_case[written.casefold()] = spoken
        else:
            exact[written] = spoken
    return Lexicon(exact, any_case)


def apply_lexicon(book: Book, lexicon: Lexicon) -> Book:
    """The book with the lexicon applied to every chapter's title and paragraphs."""
    chapters = tuple(
        dataclasses.replace(
            chapter,
            title=lexicon.apply(chapter.title),
            paragraphs=tuple(dataclasses.replace(p, text=lexicon.apply(p.text))
                             for p in chapter.paragraphs),
        )
        for chapter in book.chapters
    )
    return dataclasses.replace(book, chapters=chapters)


def _same_case(spoken: str, written: str) -> str:
    """`spoken` in the case of `written`: "KERNEL" for "COLONEL", "Kernel" for "Colonel"."""
    if len(written) > 1 and written.isupper():
        return spoken.upper()
    if written[:1].isupper():
        return spoken[:1].upper() + spoken[1:]
    return spoken
