"""The plain dataclasses that flow one way through the pipeline.

Book -> Chapter -> Paragraph (read) -> Chunk (text) -> Take (speech) -> ChapterAudio (audio).
Each stage knows only these and its own library.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class RendererError(Exception):
    """A problem the user can fix: its message is one line, naming the file and the problem."""


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (libraries' errors run to many)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


class BookError(RendererError):
    """An input book or script that cannot be read."""


@dataclass(frozen=True)
class Paragraph:
    """One block of text as the book has it; `speaker` is set only in scripts."""

    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class Chapter:
    index: int  # 1-based, in reading order
    title: str
    paragraphs: tuple[Paragraph, ...]


COVER_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}  # magic bytes: type
YEAR = re.compile(r"(?<!\d)(\d{4})(?!\d)")  # "2019", "2019-05-01", "May 2019"


def picture_type(data: bytes) -> str:
    """"image/jpeg" or "image/png" for a picture that is one (by its first bytes), else ""."""
    return next((kind for magic, kind in COVER_TYPES.items() if data.startswith(magic)), "")


def year_of(text: str) -> str:
    """The first four-digit year in a date as books write it; "" if none."""
    match = YEAR.search(text)
    return match.group(1) if match else ""


@dataclass(frozen=True)
class Book:
    path: Path
    title: str
    author: str
    language: str  # BCP 47 tag as the book declares it ("en", "en-GB"), "" if unknown
    chapters: tuple[Chapter, ...]
    warnings: tuple[str, ...] = ()  # what was skipped while reading, for the summary
    year: str = ""  # of publication, four digits as the book gives it; "" if unknown
    cover: bytes | None = field(default=None, repr=False)  # the cover picture, JPEG or PNG
    cover_type: str = ""  # its MIME type: "image/jpeg" or "image/png"


@dataclass(frozen=True)
class Voice:
    """Who speaks: the KaniTTS model, its speaker, and the codec that turns codes into sound."""

    language: str  # "en"
    speaker: str | None  # "andrew"; None: the prompt carries no speaker prefix
    model: str  # hub id or local folder
    codec: str  # hub id or local .nemo file

    @property
    def name(self) -> str:
        return f"{self.language}:{self.speaker}" if self.speaker else self.language


@dataclass(frozen=True)
class Chunk:
    """A piece of one paragraph, about 5-15 s of speech, spoken by one voice."""

    chapter: int  # Chapter.index
    paragraph: int  # 0-based paragraph index within the chapter
    index: int  # 0-based chunk index within the chapter
    text: str  # normalized, what the model reads
    voice: Voice
    seconds: float  # estimated speech duration, from the text's length
    is_title: bool = False  # the chapter's spoken title: a longer pause follows
    last_in_paragraph: bool = True  # a paragraph pause follows, not a crossfade


@dataclass
class Take:
    """What the speech stage made of one chunk.

    codes: (4, frames) int64 codec codes, each in 0..4031; `finished` is False for a runaway
    (no END_OF_SPEECH within max_tokens after every retry).
    """

    chunk: Chunk
    codes: np.ndarray
    finished: bool
    attempts: int = 1
    audio: np.ndarray | None = field(default=None, repr=False)  # float32 mono, codec sample rate
    steps: tuple[int, int] = (0, 0)  # engine steps at which its last attempt was queued and finished


@dataclass
class ChapterAudio:
    chapter: Chapter
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int  # Hz

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate
