"""Chapters in, chunks out: pieces of one paragraph that the speech model reads in one go.

KaniTTS was trained on clips of at most 12 seconds, so a chunk is packed from whole sentences up to
that length and never crosses a paragraph (nor, therefore, a change of speaker). A sentence too
long for one chunk is split at clause punctuation, then between words. With a cast (scripts), each
paragraph's chunks are in its speaker's voice, and stage directions are narrated or left out.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pysbd
from pysbd.languages import LANGUAGE_CODES

from renderer.book import Book, Chapter, Chunk, Voice
from renderer.text.normalize import normalize

if TYPE_CHECKING:
    from renderer.cast import Cast

CHARS_PER_SECOND = 15.0  # characters of English text spoken per second, spaces included
MIN_CHUNK_SECONDS = 5  # shorter chunks sound clipped: their prosody has no room
MAX_CHUNK_SECONDS = 12  # KaniTTS was trained on clips of at most 12 s
MIN_CHUNK_CHARS = round(MIN_CHUNK_SECONDS * CHARS_PER_SECOND)  # 75 characters
MAX_CHUNK_CHARS = round(MAX_CHUNK_SECONDS * CHARS_PER_SECOND)  # 180 characters

FALLBACK_LANGUAGE = "en"  # pysbd's rules for a language it does not know
TITLE_PARAGRAPH = -1  # Chunk.paragraph of a chapter's spoken title

# What it costs to end a chunk after a piece, by how the piece ends: sentence ends are best.
SENTENCE_BREAK_COST = 0.0
CLAUSE_BREAK_COST = 0.3
WORD_BREAK_COST = 0.6
CHUNK_COST = 1.0  # each chunk; break costs stay below it, so fewer chunks win first
SHORT_CHUNK_COST = 10.0  # an empty chunk; one under MIN_CHUNK_CHARS pays its share of this

_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=\s-)\s+")  # after , ; : and a spaced dash
_LEADING_DASH = re.compile(r"^-\s+")  # "see?—Posted" leaves "- Posted" after the split


@dataclass(frozen=True)
class _Piece:
    """A sentence, or part of one, and the cost of ending a chunk after it."""

    text: str
    break_cost: float


def estimate_seconds(text: str) -> float:
    """Seconds of speech for `text`, from its length at CHARS_PER_SECOND."""
    return len(text.strip()) / CHARS_PER_SECOND


def chunk_book(book: Book, voice: Voice, cast: Cast | None = None) -> list[Chunk]:
    """Every chapter's chunks, in reading order; see `chunk_chapter`.

    The text is normalized in the book's language, or the voice's when the book declares none.
    """
    language = spoken_language(book, voice)
    return [chunk for chapter in book.chapters for chunk in chunk_chapter(chapter, voice, language, cast)]


def spoken_language(book: Book, voice: Voice) -> str:
    """The language the text is normalized in: the book's, or the voice's when the book declares none."""
    return book.language or voice.language


def chunk_chapter(chapter: Chapter, voice: Voice, language: str, cast: Cast | None = None) -> list[Chunk]:
    """One chapter's chunks: its spoken title (is_title, paragraph -1), then its paragraphs.

    Each chunk holds normalized text of at most MAX_CHUNK_CHARS (one over-long word aside), from one
    paragraph; Chunk.index counts from 0 within the chapter, Chunk.paragraph is the paragraph's
    index in the chapter. Chunks with nothing speakable are dropped; a chapter with no speakable
    text gets no chunks at all, not even its title.
    cast: None, every chunk is `voice`'s; else the title is the cast's narrator's, each paragraph
    its speaker's (`cast.voice_for`), and stage directions are left out unless the cast narrates
    them. Raises CastError for a speaker the cast cannot voice (load_cast checks that first).
    """
    title_voice = voice if cast is None else cast.narrator
    by_paragraph = [(TITLE_PARAGRAPH, title_voice,
                     _pack(_split_long(normalize(chapter.title, language, title=True))))]
    for number, paragraph in enumerate(chapter.paragraphs):
        if cast is not None and not cast.speaks(paragraph.speaker):
            continue
        by_paragraph.append((number, voice if cast is None else cast.voice_for(paragraph.speaker),
                             _pack(_pieces(normalize(paragraph.text, language), language))))
    if not any(texts for number, _, texts in by_paragraph if number != TITLE_PARAGRAPH):
        return []

    chunks: list[Chunk] = []
    for number, speaker_voice, texts in by_paragraph:
        for position, text in enumerate(texts):
            chunks.append(Chunk(
                chapter=chapter.index,
                paragraph=number,
                index=len(chunks),
                text=text,
                voice=speaker_voice,
                seconds=estimate_seconds(text),
                is_title=number == TITLE_PARAGRAPH,
                last_in_paragraph=position == len(texts) - 1,
            ))
    return chunks


def _pieces(text: str, language: str) -> list[_Piece]:
    """A paragraph's sentences, each split further if it is longer than one chunk."""
    return [piece for sentence in _segmenter(language).segment(text)
            for piece in _split_long(_LEADING_DASH.sub("", sentence.strip()))]


@functools.cache
def _segmenter(language: str) -> pysbd.Segmenter:
    code = language.split("-")[0].lower()
    return pysbd.Segmenter(language=code if code in LANGUAGE_CODES else FALLBACK_LANGUAGE,
                           clean=False)


def _split_long(sentence: str) -> list[_Piece]:
    """One sentence as pieces of at most MAX_CHUNK_CHARS: whole, else clauses, else word runs."""
    if not any(c.isalnum() for c in sentence):
        return []
    if len(sentence) <= MAX_CHUNK_CHARS:
        return [_Piece(sentence, SENTENCE_BREAK_COST)]
    pieces = []
    for clause in _CLAUSE_END.split(sentence):
        if len(clause) <= MAX_CHUNK_CHARS:
            pieces.append(_Piece(clause, CLAUSE_BREAK_COST))
        else:
            pieces.extend(_Piece(words, WORD_BREAK_COST) for words in _word_runs(clause))
    return [*pieces[:-1], _Piece(pieces[-1].text, SENTENCE_BREAK_COST)]


def _word_runs(clause: str) -> list[str]:
    """Consecutive words joined into runs of at most MAX_CHUNK_CHARS (a longer word alone)."""
    runs = [""]
    for word in clause.split():
        if runs[-1] and len(runs[-1]) + 1 + len(word) > MAX_CHUNK_CHARS:
            runs.append("")
        runs[-1] = f"{runs[-1]} {word}".strip()
    return runs


def _pack(pieces: list[_Piece]) -> list[str]:
    """Consecutive pieces joined into chunks of at most MAX_CHUNK_CHARS.

    The cheapest packing wins: few chunks, as few characters short of MIN_CHUNK_CHARS as can be
    helped, and breaks at sentence ends rather than clauses or words. Returns the chunks' texts.
    """
    # best[j] = (cost, start): the cheapest packing of pieces[:j] ends with pieces[start:j]
    best = [(0.0, 0)] + [(float("inf"), 0)] * len(pieces)
    for end in range(1, len(pieces) + 1):
        length = -1
        for start in range(end - 1, -1, -1):
            length += len(pieces[start].text) + 1
            if length > MAX_CHUNK_CHARS and start < end - 1:
                break
            shortfall = max(0, MIN_CHUNK_CHARS - length) / MIN_CHUNK_CHARS
            cost = (best[start][0] + CHUNK_COST + pieces[end - 1].break_cost
                    + SHORT_CHUNK_COST * shortfall)
            if cost < best[end][0]:
                best[end] = (cost, start)

    texts = []
    end = len(pieces)
    while end > 0:
        start = best[end][1]
        texts.append(" ".join(piece.text for piece in pieces[start:end]))
        end = start
    return texts[::-1]
