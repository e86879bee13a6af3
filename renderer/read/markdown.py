"""Markdown (CommonMark, through markdown-it-py) in, Book out.

Chapters start at the top heading level that has text right under it, so a `# Book title` with
nothing under it but `## Chapter` sections gives the chapters of the H2s. Paragraphs come from
paragraphs, list items and block quotes, with inline markup stripped to its text; code and raw
HTML are skipped.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

from markdown_it import MarkdownIt

from renderer.book import Book, BookError, Chapter, Paragraph

# Optional front matter: a first block of `key: value` lines between two `---` lines.
FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
FRONT_MATTER_LINE = re.compile(r"^\s*([A-Za-z][\w-]*)\s*:\s*(.*?)\s*$")
LANGUAGE_KEYS = ("language", "lang")
PARAGRAPH = 0  # the level of a block that is not a heading
SKIPPED_INLINE = frozenset({"image", "html_inline"})  # images' alt text and raw HTML are not read
PLAIN_TEXT_SUFFIX = ".txt"


def read_markdown(path: Path) -> Book:
    """Read a Markdown file into a Book.

    Title: front matter `title:`, else the first H1, else the file's stem. Author and language
    come from front matter `author:` and `language:` (or `lang:`), else "".
    Raises BookError for text that is not UTF-8 or has nothing to read.
    """
    try:
        source = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BookError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from None
    fields, body = _front_matter(source.replace("\r\n", "\n"))
    blocks = _blocks(body, plain_text=path.suffix.lower() == PLAIN_TEXT_SUFFIX)
    first_h1 = next((text for level, text in blocks if level == 1), None)
    title = fields.get("title") or first_h1 or path.stem
    chapters = _chapters(blocks, title)
    if not chapters:
        raise BookError(f"{path}: no readable text (no paragraphs outside code blocks)")
    language = next((fields[key] for key in LANGUAGE_KEYS if fields.get(key)), "")
    return Book(path=path, title=title, author=fields.get("author", ""), language=language,
                chapters=chapters)


def _front_matter(source: str) -> tuple[dict[str, str], str]:
    """Split `key: value` front matter off the text; ({}, source) when there is none."""
    match = FRONT_MATTER.match(source)
    if not match:
        return {}, source
    lines = [line for line in match.group(1).splitlines() if line.strip()]
    pairs = [FRONT_MATTER_LINE.match(line) for line in lines]
    if not lines or not all(pairs):  # not front matter: a rule and a setext heading, say
        return {}, source
    fields = {m.group(1).lower(): m.group(2).strip("\"'") for m in pairs}
    return fields, source[match.end():]


def _blocks(body: str, plain_text: bool = False) -> list[tuple[int, str]]:
    """The document as (heading level, or PARAGRAPH, plain text) in order; code is skipped."""
    parser = MarkdownIt("commonmark")
    if plain_text:
        parser.disable("code")  # plain text indents paragraphs; that is not code
    blocks = []
    level = PARAGRAPH
    for token in parser.parse(body):
        if token.type == "heading_open":
            level = int(token.tag[1:])
        elif token.type == "paragraph_open":
            level = PARAGRAPH
        elif token.type == "inline":
            text = " ".join("".join(_inline_text(token.children or [])).split())
            if text:
                blocks.append((level, text))
    return blocks


def _inline_text(children) -> list[str]:
    """The readable strings of an inline token's children: link text kept, markup dropped."""
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
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
