"""Markdown (CommonMark with tables, through markdown-it-py) in, Book out.

Chapters start at the top heading level that has text right under it, so a `# Book title` with
nothing under it but `## Chapter` sections gives the chapters of the H2s. Paragraphs come from
paragraphs, list items, block quotes and table rows (a row's cells as lines), with inline markup
stripped to its text; code, images and raw HTML (comments too) are skipped. YAML front matter gives
the title, author, language, year and cover picture.
"""
from __future__ import annotations

import datetime
import itertools
import re
from pathlib import Path

import yaml
from markdown_it import MarkdownIt

from renderer.book import Book, BookError, Chapter, Paragraph, picture_type, year_of
from renderer.read.plain import LINE_BREAK, source_spaces, tidy_lines

# Optional front matter: a first block of YAML between two `---` lines.
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
TITLE_KEYS = ("title",)
AUTHOR_KEYS = ("author", "authors", "creator")
LANGUAGE_KEYS = ("language", "lang")
YEAR_KEYS = ("year", "date")  # a date (2019-05-01) gives its year
COVER_KEYS = ("cover", "cover-image", "cover_image")  # a JPEG or PNG file, relative to the book
PARAGRAPH = 0  # the level of a block that is not a heading
SKIPPED_INLINE = frozenset({"image", "html_inline"})  # images' alt text and raw HTML are not read
PLAIN_TEXT_SUFFIX = ".txt"


def read_markdown(path: Path, all_matter: bool = False) -> Book:
    """Read a Markdown file into a Book.

    Title: front matter `title:`, else the first H1, else the file's stem. Author and language
    come from front matter `author:` (or `authors:`, a list read as "A, B") and `language:` (or
    `lang:`), else "". Year: `year:` or `date:`; cover: `cover:`, a JPEG or PNG file beside the
    book. Markdown marks no front or back matter: `all_matter` changes nothing.
    Raises BookError for text that is not UTF-8 or has nothing to read, or a cover that is not there
    or not a picture.
    """
    try:
        source = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BookError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from None
    fields, body = _front_matter(source.replace("\r\n", "\n").replace("\r", "\n"))
    blocks = _blocks(body, plain_text=path.suffix.lower() == PLAIN_TEXT_SUFFIX)
    first_h1 = next((text for level, text in blocks if level == 1), None)
    title = _field(fields, TITLE_KEYS) or first_h1 or path.stem
    chapters = _chapters(blocks, title)
    if not chapters:
        raise BookError(f"{path}: no readable text (no paragraphs outside code blocks)")
    cover, cover_type = _cover(path, _field(fields, COVER_KEYS))
    return Book(path=path, title=title, author=_field(fields, AUTHOR_KEYS),
                language=_field(fields, LANGUAGE_KEYS), chapters=chapters,
                year=year_of(_field(fields, YEAR_KEYS)), cover=cover, cover_type=cover_type)


def _cover(path: Path, name: str) -> tuple[bytes | None, str]:
    """The front matter's cover picture (a path relative to the book) and its type; (None, "") for
    none. Raises BookError for a cover that cannot be read or is not a JPEG or PNG."""
    if not name:
        return None, ""
    cover = path.parent / name
    try:
        data = cover.read_bytes()
    except OSError as error:
        raise BookError(f"{path}: front matter cover {name!r}: cannot read {cover} "
                        f"({error.strerror or error})") from None
    kind = picture_type(data)
    if not kind:
        raise BookError(f"{path}: front matter cover {name!r} is not a JPEG or PNG picture")
    return data, kind


def _front_matter(source: str) -> tuple[dict, str]:
    """Split YAML front matter off the text; ({}, source) when there is none.

    What is not a YAML mapping (a thematic break and a setext heading, say) is not front matter.
    """
    match = FRONT_MATTER.match(source)
    if not match:
        return {}, source
    try:
        fields = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}, source
    if not isinstance(fields, dict):
        return {}, source
    return {str(key).lower(): value for key, value in fields.items()}, source[match.end():]


def _field(fields: dict, keys: tuple[str, ...]) -> str:
    """The first of `keys` with a value, as one line; a list of plain values as "A, B"."""
    for key in keys:
        value = fields.get(key)
        values = value if isinstance(value, list) else [value]
        # Only plain values: YAML aliases could make a nested value vast once turned into text.
        text = ", ".join(" ".join(str(v).split()) for v in values if isinstance(v, str | int | float | datetime.date))
        if text:
            return text
    return ""


def _blocks(body: str, plain_text: bool = False) -> list[tuple[int, str]]:
    """The document as (heading level, or PARAGRAPH, plain text) in order; code is skipped.

    A table row is one paragraph, its cells lines of it.
    """
    parser = MarkdownIt("commonmark").enable("table")
    if plain_text:
        parser.disable("code")  # plain text indents paragraphs; that is not code
    blocks = []
    level = PARAGRAPH
    row: list[str] | None = None  # the cells of the table row being read
    for token in parser.parse(body):
        if token.type == "heading_open":
            level = int(token.tag[1:])
        elif token.type == "paragraph_open":
            level = PARAGRAPH
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close":
            blocks.append((PARAGRAPH, tidy_lines(LINE_BREAK.join(row))))
            row = None
        elif token.type == "inline":
            text = tidy_lines("".join(_inline_text(token.children or [])))
            if row is not None:
                row.append(text)
            elif text:
                blocks.append((level, text))
    return [(level, text) for level, text in blocks if text]


def _inline_text(children) -> list[str]:
    """The readable strings of an inline token's children: link text kept, markup dropped; a hard
    line break (verse) is a LINE_BREAK."""
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(source_spaces(child.content))
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append(LINE_BREAK)
        elif child.type not in SKIPPED_INLINE and child.children:
            parts.extend(_inline_text(child.children))
    return parts


def _chapters(blocks: list[tuple[int, str]], book_title: str) -> tuple[Chapter, ...]:
    """Group blocks into chapters at the chapter heading level; deeper headings read as text.

    Text before the first chapter heading becomes a chapter named after the book. Headings with no
    text of their own (the book's title, part titles) give no chapter.
    """
    levels_with_text = {level for (level, _), (next_level, _) in itertools.pairwise(blocks)
                        if level != PARAGRAPH and next_level == PARAGRAPH}
    chapter_level = min(levels_with_text, default=PARAGRAPH)

    sections: list[tuple[str, list[str]]] = [(book_title, [])]
    for level, text in blocks:
        if level != PARAGRAPH and level <= chapter_level:
            sections.append((text, []))
        else:
            sections[-1][1].append(text)
    return tuple(
        Chapter(index=number, title=title, paragraphs=tuple(Paragraph(text) for text in texts))
        for number, (title, texts) in enumerate((s for s in sections if s[1]), start=1)
    )
