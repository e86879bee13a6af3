"""The book as it will be spoken, without loading any model: chapters, words, chunks, time.

`spoken_book` is what `render` and `render inspect` both read: the book, its matter left out or
kept, the user's lexicon applied, the chapters chosen. `inspect_book` then chunks it as the render
would and says how much there is to speak.
"""
from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from renderer.audio.assemble import (
    HEAD_SECONDS,
    PARAGRAPH_PAUSE_SECONDS,
    TAIL_SECONDS,
    TITLE_PAUSE_SECONDS,
)
from renderer.book import Book, BookError, Chapter, Chunk, Voice
from renderer.read import AUTO, read_book
from renderer.read.plain import count_words
from renderer.read.script import DIRECTION, speakers_of
from renderer.text.chunk import chunk_chapter
from renderer.text.lexicon import apply_lexicon, read_lexicon

if TYPE_CHECKING:
    from renderer.cast import Cast

_RANGE = re.compile(r"(\d+)(?:\s*-\s*(\d*))?")  # "3", "3-5", "7-" (to the end)


def spoken_book(path: Path, all_matter: bool = False, lexicon: Path | None = None,
                chapters: str | None = None, kind: str = AUTO) -> Book:
    """Read `path` as it will be rendered: as `kind` (see read_book), matter kept if `all_matter`,
    the lexicon file applied, only the `chapters` spec's chapters ("3-5,9"; None: all).
    Raises RendererError, one line."""
    book = read_book(path, all_matter=all_matter, kind=kind)
    if lexicon is not None:
        book = apply_lexicon(book, read_lexicon(lexicon))
    return select_chapters(book, chapters) if chapters is not None else book


def select_chapters(book: Book, spec: str) -> Book:
    """The book with only the chapters `spec` names, in reading order, keeping their numbers.

    spec: chapter numbers as `render inspect` shows them, and ranges: "3-5,9", "7-" (7 to the
    end). Raises BookError, one line, for a spec that is not that or names a chapter not there.
    """
    numbers = [chapter.index for chapter in book.chapters]
    last = max(numbers)
    chosen: set[int] = set()
    for part in spec.split(","):
        match = _RANGE.fullmatch(part.strip())
        if match is None:
            raise BookError(f"chapters {spec!r}: expected chapter numbers and ranges, like 3-5,9")
        first = int(match.group(1))
        end = first if match.group(2) is None else int(match.group(2) or last)
        if end < first:
            raise BookError(f"chapters {spec!r}: the range {part.strip()} runs backwards")
        for number in (first, end):
            if number not in numbers:
                raise BookError(f"chapters {spec!r}: {book.path} has no chapter {number} "
                                f"(it has {_ranges(numbers)})")
        chosen.update(range(first, end + 1))
    return dataclasses.replace(book, chapters=tuple(c for c in book.chapters if c.index in chosen))


def _ranges(numbers: list[int]) -> str:
    """"1-10" for consecutive numbers, else "1, 3, 4"."""
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return ", ".join(map(str, numbers))


def chapter_words(chapter: Chapter, cast: Cast | None = None) -> int:
    """Words of a chapter's title and paragraphs, as written (before numbers become words);
    with a cast, of the paragraphs it speaks (stage directions only if narrated)."""
    spoken = (p for p in chapter.paragraphs if cast is None or cast.speaks(p.speaker))
    return count_words(chapter.title) + sum(count_words(p.text) for p in spoken)


def chapter_seconds(chunks: list[Chunk]) -> float:
    """A chapter's estimated length: its chunks' speech, and the pauses assembly puts around it."""
    if not chunks:
        return 0.0
    pauses = sum(TITLE_PAUSE_SECONDS if c.is_title else PARAGRAPH_PAUSE_SECONDS
                 for c in chunks[:-1] if c.is_title or c.last_in_paragraph)
    return HEAD_SECONDS + sum(c.seconds for c in chunks) + pauses + TAIL_SECONDS


def book_chunks(book: Book, voice: Voice, cast: Cast | None = None) -> dict[int, list[Chunk]]:
    """Each chapter's chunks, by Chapter.index, as the render will make them."""
    language = book.language or voice.language
    return {chapter.index: chunk_chapter(chapter, voice, language, cast) for chapter in book.chapters}


def inspect_book(book: Book, voice: Voice, cast: Cast | None = None) -> dict:
    """What the render of `book` with `voice` (and `cast`, for a script) will speak.

    Returns {"title", "author", "language", "words", "seconds", "chapters": [{"index", "title",
    "words", "chunks", "seconds"}]}: language is the one the text is read in (the book's, else the
    voice's); words are counted on what will be spoken (titles and paragraphs of chapters with
    anything to speak), before numbers become words; seconds are estimated speech and pauses.
    With a cast it also has "speakers" (see `speaker_rows`).
    """
    chunks = book_chunks(book, voice, cast)
    chapters = [
        {
            "index": chapter.index,
            "title": chapter.title,
            "words": chapter_words(chapter, cast) if chunks[chapter.index] else 0,
            "chunks": len(chunks[chapter.index]),
            "seconds": round(chapter_seconds(chunks[chapter.index]), 1),
        }
        for chapter in book.chapters
    ]
    inspection = {
        "title": book.title,
        "author": book.author,
        "language": book.language or voice.language,
        "words": sum(c["words"] for c in chapters),
        "seconds": round(sum(c["seconds"] for c in chapters), 1),
        "chapters": chapters,
    }
    if cast is not None:
        inspection["speakers"] = speaker_rows(book, cast, chunks)
    return inspection


def speaker_rows(book: Book, cast: Cast, chunks: dict[int, list[Chunk]]) -> list[dict]:
    """Who speaks how much: [{"name", "voice", "lines", "words", "seconds"}], in order of first speech.

    A joint speech counts for each of its speakers; a speaker's voice is the one of their own
    speeches (of their first joint one if they have none). Narrated stage directions are a row
    named DIRECTION. lines: speeches with something to speak; words as written; seconds of speech.
    """
    seconds: dict[tuple[int, int], float] = defaultdict(float)  # (chapter, paragraph) -> speech
    for chunk in (c for chapter_chunks in chunks.values() for c in chapter_chunks if not c.is_title):
        seconds[chunk.chapter, chunk.paragraph] += chunk.seconds
    rows: dict[str, dict] = {}
    for chapter in book.chapters:
        for number, paragraph in enumerate(chapter.paragraphs):
            if paragraph.speaker is None or (chapter.index, number) not in seconds:
                continue
            voice = cast.voice_for(paragraph.speaker).name
            names = [DIRECTION] if paragraph.speaker == DIRECTION else speakers_of(paragraph.speaker)
            for name in names:
                row = rows.setdefault(name.casefold(), {"name": name, "voice": voice, "lines": 0, "words": 0, "seconds": 0.0})
                if len(names) == 1:
                    row["voice"] = voice
                row["lines"] += 1
                row["words"] += count_words(paragraph.text)
                row["seconds"] += seconds[chapter.index, number]
    return [{**row, "seconds": round(row["seconds"], 1)} for row in rows.values()]


def clock(seconds: float) -> str:
    """"1:02:03" or "2:03": a duration as a listener reads it."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def summary_line(chapters: int, words: int, skipped: int) -> str:
    """The one line `render` and `render inspect` end with."""
    left = f"{skipped} thing{'s' if skipped != 1 else ''} skipped or left out (see the warnings)"
    return (f"{chapters} chapter{'s' if chapters != 1 else ''}, {words:,} words; "
            f"{left if skipped else 'nothing skipped'}")


def table(inspection: dict) -> list[str]:
    """`inspect_book`'s answer as lines for a terminal: a heading, a row a chapter, the totals."""
    byline = f" by {inspection['author']}" if inspection["author"] else ""
    rows = [f"{inspection['title']}{byline} ({inspection['language']})",
            f"{'#':>4}  {'words':>7}  {'chunks':>6}  {'time':>8}  title"]
    for c in inspection["chapters"]:
        rows.append(f"{c['index']:>4}  {c['words']:>7,}  {c['chunks']:>6}  {clock(c['seconds']):>8}  {c['title']}")
    chunks = sum(c["chunks"] for c in inspection["chapters"])
    rows.append(f"{'':>4}  {inspection['words']:>7,}  {chunks:>6}  {clock(inspection['seconds']):>8}  in all")
    if "speakers" in inspection:
        rows.append("")
        rows.append(f"{'lines':>6}  {'words':>7}  {'time':>8}  {'voice':<10}  speaker")
        for s in inspection["speakers"]:
            rows.append(f"{s['lines']:>6}  {s['words']:>7,}  {clock(s['seconds']):>8}  {s['voice']:<10}  {s['name']}")
    return rows
