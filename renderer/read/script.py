"""Scripts (plays, radio drama, interviews) in, Book out: one Paragraph per speech, with its speaker.

A script is plain text, line by line (LF or CRLF, any spacing around tags and words):
- `HAMLET: To be, or not to be` starts a speech. Lines after it without a tag continue it (a blank
  line inside a speech is a short pause); so does text after a stage direction that interrupts it.
  A tag is one to four words, each starting with a capital, before a colon; `A & B:` is a joint
  speech, its speaker written `A & B`.
- `[Enter the Ghost]` on its own line (or lines, up to the `]`) is a stage direction; a bracketed
  part inside a speech is left out of it.
- `# Scene 2` starts a chapter; headings with nothing between them make one title ("Act 1: Scene 1").
  Speeches before the first heading are a chapter named after the script.
- A `+++` line at the top opens TOML front matter, closed by the next `+++` line: `title`, `author`
  (text, or a list read "A, B"), `language`, and the `[cast]` table that renderer.cast reads.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from renderer.book import Book, BookError, Chapter, Paragraph, RendererError
from renderer.read.plain import LINE_BREAK, tidy_lines

DIRECTION = "[direction]"  # Paragraph.speaker of a stage direction; brackets: no tag can be this
JOINT = "&"  # between the speakers of a joint speech
FENCE = "+++"  # the line above and below the front matter
TAG_END = ":"
MAX_TAG_WORDS = 4  # "FIRST GRAVEDIGGER", "Dr. Henry Jekyll": a longer run before a colon is text
NAME_MARKS = frozenset(".'\u2019-")  # what a tag's words may hold besides letters and digits
TITLE_JOIN = ": "  # between headings with nothing between them

_HEADING = re.compile(r"#+\s*(.*)")
_INLINE_DIRECTION = re.compile(r"\[[^\]]*\]")
_TOML_ERROR_AT = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)")
_TOML_TABLE = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?")
_TOML_KEY = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


@dataclass(frozen=True)
class Script:
    """A script as read: its Book, its front matter, and where each speaker first speaks."""

    book: Book
    front_matter: str  # the TOML text between the fences, "" when there is none
    front_matter_line: int  # the file's line number of the front matter's first line
    first_lines: dict[str, int]  # speaker as tagged -> line number of their first speech


def read_script(path: Path, all_matter: bool = False) -> Book:
    """Read a script file into a Book; see `parse_script`. Scripts have no matter to leave out."""
    return parse_script(path).book


def parse_script(path: Path) -> Script:
    """Read a script file (UTF-8) into a Script.

    Title: front matter `title`, else the file's stem; author and language from the front matter,
    else "". Raises BookError, one line naming the file, the line and the problem: text that is
    not UTF-8, front matter that does not parse or is never closed, a stage direction never
    closed, a heading with no title, text before any speaker's tag, or no speech at all.
    """
    path = Path(path)
    try:
        source = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BookError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from None
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    front_matter, front_line, body_line = _split_front_matter(lines, path)
    fields, key_lines = read_toml(front_matter, path, front_line, BookError)
    title = _text_field(fields, "title", key_lines, path) or path.stem
    chapters, first_lines = _chapters(_lines(lines[body_line - 1:], body_line, path), title, path)
    if not any(p.speaker != DIRECTION for chapter in chapters for p in chapter.paragraphs):
        raise BookError(f"{path}: no speeches (a speech is a line like 'NAME: text')")
    book = Book(path=path, title=title, author=_text_field(fields, "author", key_lines, path),
                language=_text_field(fields, "language", key_lines, path), chapters=chapters)
    return Script(book, front_matter, front_line, first_lines)


def speakers_of(speaker: str) -> list[str]:
    """The speakers of a speech's tag: ["ROSENCRANTZ", "GUILDENSTERN"] for a joint one."""
    return [name.strip() for name in speaker.split(JOINT)]


def read_toml(text: str, path: Path, first_line: int,
              error: type[RendererError]) -> tuple[dict, dict[tuple[str, str], int]]:
    """Parse TOML `text` that starts at line `first_line` of `path`.

    Returns the data, and the line of each key as (table, key) -> line number ("" for the top
    level). Raises `error`, one line naming the file and line, for TOML that does not parse.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        message = str(problem)
        match = _TOML_ERROR_AT.search(message)
        at = int(match.group(1)) if match and match.group(1) else len(text.split("\n"))
        raise error(f"{path}, line {first_line + at - 1}: not valid TOML ({_TOML_ERROR_AT.sub('', message)})") from None
    table = ""
    key_lines: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text.split("\n"), start=first_line):
        if match := _TOML_TABLE.fullmatch(line):
            table = _toml_key(match.group(1))
            key_lines.setdefault(("", table), number)
        elif match := _TOML_KEY.match(line):
            key_lines.setdefault((table, _toml_key(match.group(1))), number)
    return data, key_lines


def _toml_key(written: str) -> str:
    """A key as TOML reads it: quotes and escapes undone (`"A & B"` -> `A & B`)."""
    try:
        return next(iter(tomllib.loads(f"{written} = 0")))
    except (tomllib.TOMLDecodeError, StopIteration):
        return written.strip()


def _split_front_matter(lines: list[str], path: Path) -> tuple[str, int, int]:
    """(front matter TOML, its first line number, the body's first line number); ("", 1, 1)
    without front matter."""
    if not lines or lines[0].strip() != FENCE:
        return "", 1, 1
    for index, line in enumerate(lines[1:], start=1):
        if line.strip() == FENCE:
            return "\n".join(lines[1:index]), 2, index + 2
    raise BookError(f"{path}, line 1: the front matter opened with {FENCE} is never closed by a {FENCE} line")


def _text_field(fields: dict, key: str, key_lines: dict[tuple[str, str], int], path: Path) -> str:
    """A front-matter field as one line of text; a list of texts as "A, B"; "" when absent."""
    value = fields.get(key, "")
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) for v in values):
        raise BookError(f"{path}, line {key_lines.get(('', key), 1)}: {key} must be text in quotes")
    return ", ".join(" ".join(v.split()) for v in values if v.strip())


def _lines(lines: list[str], first_line: int, path: Path):
    """The body as (line number, kind, speaker or None, text), kind one of "heading", "direction",
    "speech", "text", "blank"; a direction's lines are joined, text after its `]` read as a line."""
    numbered = iter(enumerate(lines, start=first_line))
    for number, line in numbered:
        line = line.strip()
        if not line:
            yield number, "blank", None, ""
            continue
        while line.startswith("["):
            opened = number
            while "]" not in line:
                following = next(numbered, None)
                if following is None:
                    raise BookError(f"{path}, line {opened}: the stage direction opened with '[' is never closed")
                number, more = following
                line = f"{line} {more.strip()}"
            direction, _, line = line[1:].partition("]")
            yield opened, "direction", DIRECTION, direction
            line = line.strip()
        if not line:
            continue
        if heading := _HEADING.fullmatch(line):
            if not heading.group(1).strip():
                raise BookError(f"{path}, line {number}: a heading with no title")
            yield number, "heading", None, heading.group(1)
        elif tagged := _tag(line):
            yield number, "speech", *tagged
        else:
            yield number, "text", None, line


def _tag(line: str) -> tuple[str, str] | None:
    """(speaker, text) for a line that starts with a speaker's tag, else None."""
    head, colon, text = line.partition(TAG_END)
    names = [" ".join(name.split()) for name in head.split(JOINT)]
    if not colon or not all(_is_name(name) for name in names):
        return None
    return f" {JOINT} ".join(names), text


def _is_name(name: str) -> bool:
    words = name.split()
    return 0 < len(words) <= MAX_TAG_WORDS and all(
        word[0].isupper() and all(c.isalnum() or c in NAME_MARKS for c in word) for word in words)


def _chapters(lines, book_title: str, path: Path) -> tuple[tuple[Chapter, ...], dict[str, int]]:
    """The body's lines grouped into chapters of speeches and stage directions."""
    sections: list[tuple[list[str], list[list]]] = [([], [])]  # (titles, [[speaker, text]])
    first_lines: dict[str, int] = {}
    speaker = None  # who speaks on a line without a tag
    pause = False  # a blank line since the speech's last line
    for number, kind, tagged, text in lines:
        paragraphs = sections[-1][1]
        if kind == "heading":
            if paragraphs:
                sections.append(([], []))
            sections[-1][0].append(text)
            speaker = None
        elif kind == "speech":
            speaker = tagged
            first_lines.setdefault(speaker, number)
            paragraphs.append([speaker, text])
        elif kind == "direction":
            paragraphs.append([DIRECTION, text])
        elif kind == "text":
            if speaker is None:
                raise BookError(f"{path}, line {number}: text without a speaker (start a speech with 'NAME: ')")
            if paragraphs and paragraphs[-1][0] == speaker:
                paragraphs[-1][1] += (LINE_BREAK if pause else " ") + text
            else:  # the speech goes on after a stage direction
                paragraphs.append([speaker, text])
        pause = kind == "blank"
    chapters = []
    for titles, paragraphs in sections:
        kept = tuple(Paragraph(text, speaker) for speaker, text in map(_tidy, paragraphs) if text)
        if kept:
            chapters.append(Chapter(index=len(chapters) + 1, title=TITLE_JOIN.join(titles or [book_title]),
                                    paragraphs=kept))
    return tuple(chapters), first_lines


def _tidy(paragraph: list) -> tuple[str, str]:
    """(speaker, text) with white space tidied; a speech's bracketed parts left out."""
    speaker, text = paragraph
    if speaker != DIRECTION:
        text = _INLINE_DIRECTION.sub(" ", text)
    return speaker, tidy_lines(text)
