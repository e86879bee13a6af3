"""Tests for the text stage: normalize (numbers, punctuation) and chunk (bounds, paragraphs)."""
from __future__ import annotations

from pathlib import Path

import pytest

from renderer.book import Book, Chapter, Paragraph, Voice
from renderer.read import read_book
from renderer.text.chunk import (
    CHARS_PER_SECOND,
    MAX_CHUNK_CHARS,
    MIN_CHUNK_CHARS,
    chunk_book,
    chunk_chapter,
    estimate_seconds,
)
from renderer.text.normalize import normalize

SAMPLES = Path(__file__).parents[1] / "samples"
VOICE = Voice(language="en", speaker="andrew", model="tiny", codec="tiny.nemo")


def sentence(length: int) -> str:
    """An English sentence of exactly `length` characters: "Word word ... word."."""
    words = ("word " * length)[: length - 1].rstrip()
    return ("W" + words[1:]).ljust(length - 1, "d") + "."


def chapter(*texts: str, title: str = "A Title", speakers: tuple[str | None, ...] = ()) -> Chapter:
    speakers = speakers or (None,) * len(texts)
    return Chapter(index=1, title=title,
                   paragraphs=tuple(Paragraph(t, s) for t, s in zip(texts, speakers, strict=True)))


# normalize -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("It cost $5.", "It cost five dollars."),
    ("It cost $1.", "It cost one dollar."),
    ("It cost $5.50 then.", "It cost five dollars, fifty cents then."),
    ("A $1,000,000 prize", "A one million dollars prize"),
    ("50% of them", "fifty percent of them"),
    ("pi is 3.14.", "pi is three point one four."),
    ("the 1st, 2nd, 3rd and 21st", "the first, second, third and twenty-first"),
    ("In 1851 he sailed.", "In eighteen fifty-one he sailed."),
    ("In 1905.", "In nineteen oh-five."),
    ("the 1980s", "the nineteen eighties"),
    ("1,000 men and 42 boats", "one thousand men and forty-two boats"),
    ("5000 men", "five thousand men"),  # outside the years' range: a plain number
    ("from 1914–1918", "from nineteen fourteen to nineteen eighteen"),
    ("agent 007", "agent zero zero seven"),
    ("at 10am", "at ten am"),
    ("an MP3 file in B12", "an MP3 file in B12"),
])
def test_normalize_numbers_english(text, expected):
    assert normalize(text, "en") == expected


def test_normalize_punctuation_and_whitespace():
    text = "“Hello,”  she said—‘no’…\n\tﬁne\u00adly  . . ."
    assert normalize(text, "en") == "\"Hello,\" she said - 'no'... finely ..."


def test_normalize_regional_tag_and_other_languages():
    assert normalize("42", "en-GB") == "forty-two"
    assert normalize("42 Boote", "de") == "zweiundvierzig Boote"
    assert normalize("42 bateaux", "fr-CA") == "quarante-deux bateaux"


def test_normalize_unknown_language_leaves_digits():
    assert normalize("In 1851,  42 “boats”", "") == 'In 1851, 42 "boats"'
    assert normalize("42 boats", "xx") == "42 boats"


# chunking ------------------------------------------------------------------------------------

def test_chunk_constants_are_derived():
    assert round(5 * CHARS_PER_SECOND) == MIN_CHUNK_CHARS
    assert round(12 * CHARS_PER_SECOND) == MAX_CHUNK_CHARS
    assert estimate_seconds("x" * 30) == pytest.approx(30 / CHARS_PER_SECOND)


def test_title_chunk_comes_first():
    chunks = chunk_chapter(chapter("Call me Ishmael.", title="Chapter 1. Loomings"), VOICE, "en")
    title = chunks[0]
    assert (title.is_title, title.paragraph, title.index, title.text) == (
        True, -1, 0, "Chapter one. Loomings")
    assert [c.is_title for c in chunks[1:]] == [False]
    assert all(c.voice == VOICE and c.chapter == 1 for c in chunks)


def test_chunks_stay_within_bounds_and_paragraphs():
    paragraphs = [" ".join(sentence(n) for n in (60, 95, 40, 130, 20)),
                  sentence(30),
                  " ".join(sentence(n) for n in (170, 170, 170))]
    chunks = chunk_chapter(chapter(*paragraphs), VOICE, "en")

    assert [c.index for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert 0 < len(c.text) <= MAX_CHUNK_CHARS
        assert c.seconds == pytest.approx(estimate_seconds(c.text))
    for number, text in enumerate(paragraphs):
        mine = [c for c in chunks if c.paragraph == number]
        assert " ".join(c.text for c in mine) == normalize(text, "en")  # nothing lost or moved
        assert [c.last_in_paragraph for c in mine] == [False] * (len(mine) - 1) + [True]


def test_short_sentences_merge_within_a_paragraph():
    chunks = chunk_chapter(chapter("Yes. No. Maybe so.", "A second paragraph."), VOICE, "en")
    assert [c.text for c in chunks[1:]] == ["Yes. No. Maybe so.", "A second paragraph."]

    # 90 + 85 fit one chunk, but that would strand the 20; the packing keeps none that short.
    text = " ".join(sentence(n) for n in (90, 85, 20))
    lengths = [len(c.text) for c in chunk_chapter(chapter(text), VOICE, "en")[1:]]
    assert lengths == [90, 85 + 1 + 20]
    assert min(lengths) >= MIN_CHUNK_CHARS


def test_speaker_change_starts_a_new_chunk():
    chunks = chunk_chapter(chapter("Hello.", "Hi.", speakers=("ann", "bob")), VOICE, "en")
    assert [(c.paragraph, c.text) for c in chunks[1:]] == [(0, "Hello."), (1, "Hi.")]


def test_long_sentence_splits_at_clauses_then_words():
    clauses = ", ".join(["the sea rolled on beneath the boat as it had done"] * 8) + "."
    chunks = chunk_chapter(chapter(clauses), VOICE, "en")[1:]
    assert len(chunks) > 1
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert all(c.text.endswith(",") for c in chunks[:-1])  # broken after commas, not mid-clause
    assert " ".join(c.text for c in chunks) == clauses

    words = " ".join(["endless"] * 80) + "."
    chunks = chunk_chapter(chapter(words), VOICE, "en")[1:]
    assert len(chunks) > 1
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert all(set(c.text.rstrip(".").split()) == {"endless"} for c in chunks)  # no word cut
    assert " ".join(c.text for c in chunks) == words


def test_unspeakable_chunks_are_dropped():
    chunks = chunk_chapter(chapter("First part.", "* * *", "Second part."), VOICE, "en")
    assert [(c.index, c.paragraph, c.text) for c in chunks[1:]] == [
        (1, 0, "First part."), (2, 2, "Second part.")]
    assert chunk_chapter(chapter("* * *", "---"), VOICE, "en") == []
    assert chunk_chapter(Chapter(index=3, title="Empty", paragraphs=()), VOICE, "en") == []


def test_chunk_book_uses_voice_language_when_book_has_none():
    book = Book(path=Path("x.md"), title="T", author="", language="",
                chapters=(chapter("He had 3 boats.", title="One"),))
    assert [c.text for c in chunk_book(book, VOICE)] == ["One", "He had three boats."]


def test_unknown_language_falls_back_to_english_sentences():
    chunks = chunk_chapter(chapter(" ".join(sentence(n) for n in (100, 100))), VOICE, "xx")
    assert [len(c.text) for c in chunks[1:]] == [100, 100]


def test_two_chapter_sample_is_a_short_render():
    chunks = chunk_book(read_book(SAMPLES / "two-chapters.md"), VOICE)
    assert 60 <= sum(c.seconds for c in chunks) <= 90
    assert [c.chapter for c in chunks if c.is_title] == [1, 2]
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert "eighteen eighty-seven" in " ".join(c.text for c in chunks)


def test_moby_dick_sample_chunks_fit():
    chunks = chunk_book(read_book(SAMPLES / "moby-dick-opening.md"), VOICE)
    assert len({c.chapter for c in chunks}) == 3
    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    assert sum(len(c.text) < MIN_CHUNK_CHARS for c in chunks if not c.is_title) <= 3
