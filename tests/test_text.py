"""Tests for the text stage: normalize (numbers, punctuation) and chunk (bounds, paragraphs)."""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import pytest

from renderer.book import Book, Chapter, Paragraph, RendererError, Voice
from renderer.read import read_book
from renderer.text.chunk import (
    CHARS_PER_SECOND,
    MAX_CHUNK_CHARS,
    MIN_CHUNK_CHARS,
    chunk_book,
    chunk_chapter,
    estimate_seconds,
)
from renderer.text.english import roman_value
from renderer.text.lexicon import apply_lexicon, read_lexicon
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
    ("at 10am", "at ten a.m."),
    ("an MP3 file in B12", "an MP3 file in B12"),
])
def test_normalize_numbers_english(text, expected):
    assert normalize(text, "en") == expected


@pytest.mark.parametrize("text, expected", [
    # decades
    ("in the '80s and the 1920s", "in the eighties and the nineteen twenties"),
    ("in his 80s, in the 1800s", "in his eighties, in the eighteen hundreds"),
    # times
    ("at 10:30, 9:05 and 12:00", "at ten thirty, nine oh five and twelve o'clock"),
    ("at 9:00 pm and 7:45 A.M. today", "at nine p.m. and seven forty-five a.m. today"),
    ("John 3:16 and odds of 3:1", "John three sixteen and odds of three:one"),
    # Roman numerals in titles and regnal names
    ("Chapter XIV. The Storm", "Chapter fourteen. The Storm"),
    ("CHAPTER I", "CHAPTER one"),
    ("Act ii, Scene iv; World War II", "Act two, Scene four; World War two"),
    ("Henry VIII's wives and Louis XIV", "Henry the eighth's wives and Louis the fourteenth"),
    ("King Olaf II, Pope John Paul II, Elizabeth I.",
     "King Olaf the second, Pope John Paul the second, Elizabeth the first."),
    ("Appendix C, Part D, Malcolm X, I did", "Appendix C, Part D, Malcolm X, I did"),  # letters
    ("in this chapter I argue", "in this chapter I argue"),  # "chapter" lower case: not a title
    # abbreviations
    ("Mr. and Mrs. Smith met Dr. Watson", "Mister and Missus Smith met Doctor Watson"),
    ("St. Paul's on Baker St.", "Saint Paul's on Baker Street"),
    ("apples, pears, etc. Then more, etc., etc.",
     "apples, pears, et cetera. Then more, et cetera, et cetera."),
    ("e.g. this, i.e. that, cats vs. dogs", "for example this, that is that, cats versus dogs"),
    ("No. 5 and #3", "number five and number three"),
    ("Martin Luther King Jr. spoke", "Martin Luther King Junior spoke"),
    # symbols
    ("salt & pepper, R&D", "salt and pepper, R and D"),
    ("20°C, -5 °C, 98.6°F and 1°",
     "twenty degrees Celsius, minus five degrees Celsius, ninety-eight point six degrees Fahrenheit and one degree"),
    ("a 5 % rise; the % sign", "a five percent rise; the percent sign"),
])
def test_normalize_words_english(text, expected):
    assert normalize(text, "en") == expected


def test_normalize_titles_read_a_leading_roman_numeral():
    assert normalize("XIV", "en", title=True) == "Fourteen"
    assert normalize("IV. The Chase", "en", title=True) == "Four. The Chase"
    assert normalize("I Am Legend", "en", title=True) == "I Am Legend"
    assert normalize("IV. The Chase", "en") == "IV. The Chase"  # in a paragraph, a numeral alone stays


def test_roman_values_are_strict():
    assert [roman_value(n) for n in ("XIV", "xiv", "MCMLXXX", "IIII", "VX", "MIXED", "")] == [
        14, 14, 1980, None, None, None, None]


def test_normalize_line_breaks_are_pauses():
    verse = "Tyger Tyger, burning bright\nIn the forests of the night;\nWhat immortal hand or eye"
    assert normalize(verse, "en") == ("Tyger Tyger, burning bright, In the forests of the night; "
                                      "What immortal hand or eye")
    assert normalize("Ship\nTons", "en") == "Ship, Tons"  # a table row's cells


def test_normalize_other_languages_keep_their_own_words():
    assert normalize("Dr. Müller & Sohn, 50 %", "de") == "Dr. Müller und Sohn, fünfzig Prozent"
    assert normalize("Chapter XIV at 10:30", "fr") == "Chapter XIV at dix:trente"


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


# lexicon -------------------------------------------------------------------------------------

def test_lexicon_whole_words_and_case(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text("# names\n\nIshmael = ISH-may-el\ncolonel = kernel\nUS=United States\n"
                    "New Bedford = New Bedfurd\nNew = Knew\n")
    lexicon = read_lexicon(path)
    assert lexicon.apply("Call me Ishmael, Ishmaelite. The Colonel, the COLONEL and the colonel "
                         "told us the US sails from New Bedford to New York.") == (
        "Call me ISH-may-el, Ishmaelite. The Kernel, the KERNEL and the kernel told us the United "
        "States sails from New Bedfurd to Knew York.")


def test_lexicon_applies_before_chunking_and_numbers(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text("1851 = the year of the whale\nLoomings = Looming's\n")
    book = Book(path=Path("x.md"), title="T", author="", language="en",
                chapters=(chapter("In 1851 he sailed.", title="Loomings"),))
    changed = apply_lexicon(book, read_lexicon(path))
    assert [c.text for c in chunk_book(changed, VOICE)] == ["Looming's", "In the year of the whale he sailed."]
    assert book.chapters[0].paragraphs[0].text == "In 1851 he sailed."  # the book itself is unchanged


@pytest.mark.parametrize("content, problem", [
    ("Ishmael ISH-may-el\n", "line 1: expected 'written = spoken'"),
    ("# fine\n = nothing written\n", "line 2: expected 'written = spoken'"),
])
def test_lexicon_mistakes_are_one_line(tmp_path, content, problem):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(RendererError, match=problem) as error:
        read_lexicon(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(RendererError, match="no such lexicon file"):
        read_lexicon(tmp_path / "missing.txt")
    path.write_bytes(b"caf\xe9 = coffee")
    with pytest.raises(RendererError, match="not UTF-8"):
        read_lexicon(path)


# nothing dropped -----------------------------------------------------------------------------

def spoken_words(text: str) -> list[str]:
    """The words of a text, case-folded, punctuation and markup aside."""
    return re.findall(r"[\w']+", text.casefold().replace("_", " "))


def assert_each_word_in_one_chunk_in_order(chunks, source_blocks: list[str], language: str = "en"):
    """Every word of the source (normalized as the pipeline does) is in exactly one chunk, in order:
    the chunks' words, read one after another, are the source's words."""
    said = [word for chunk in chunks for word in spoken_words(chunk.text)]
    assert said == [word for block in source_blocks for word in spoken_words(normalize(block, language))]


def markdown_blocks(path: Path) -> list[str]:
    """A Markdown sample's blocks as written, less what is by design not spoken: its front matter,
    comments, and the book's title heading (it has no text of its own)."""
    text = re.sub(r"\A---\n.*?\n---\n|<!--.*?-->", "", path.read_text(), flags=re.DOTALL)
    blocks = [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]
    return [block for block in blocks if not block.startswith("# ")]


def xhtml_blocks(markup: str) -> list[str]:
    """Blocks of XHTML as a reader sees them, less what is by design not spoken: scripts, notes
    and note references."""
    markup = re.sub(r"<(script|aside)\b.*?</\1>|<a epub:type=\"noteref\".*?</a>|<sup>.*?</sup>", "",
                    markup, flags=re.DOTALL)
    blocks = re.split(r"</?(?:p|h\d|div|section|br/?)\b[^>]*>", markup)
    return [html.unescape(re.sub(r"<[^>]+>", "", block)) for block in blocks if block.strip()]


def samples_script():
    sys.path.insert(0, str(SAMPLES))
    try:
        import make_epub
    finally:
        sys.path.remove(str(SAMPLES))
    return make_epub


@pytest.mark.parametrize("name", ["two-chapters.md", "moby-dick-opening.md"])
def test_nothing_dropped_from_the_markdown_samples(name):
    chunks = chunk_book(read_book(SAMPLES / name), VOICE)
    assert_each_word_in_one_chunk_in_order(chunks, markdown_blocks(SAMPLES / name))


def test_nothing_dropped_from_the_epub_samples():
    make_epub = samples_script()
    epub2 = chunk_book(read_book(SAMPLES / "moby-dick-epub2.epub"), VOICE)
    assert_each_word_in_one_chunk_in_order(epub2, markdown_blocks(SAMPLES / "moby-dick-opening.md"))

    two = chunk_book(read_book(SAMPLES / "two-chapters.epub"), VOICE)
    assert_each_word_in_one_chunk_in_order(two, xhtml_blocks(make_epub.CHAPTER_ONE + make_epub.CHAPTER_TWO))

    poems = chunk_book(read_book(SAMPLES / "blake-poems.epub"), VOICE)
    source = [block for key, (title, poem) in make_epub.POEMS.items()
              for block in [title, *xhtml_blocks(poem.replace("\n", "<br/>"))]]
    assert_each_word_in_one_chunk_in_order(poems, source)


def test_nothing_dropped_from_a_built_epub(tmp_path):
    from test_read import XHTML, write_epub

    long = " ".join(f"Sentence {n} of a long paragraph, with a clause or two; and more." for n in range(40))
    body = (f"<h1>Loomings</h1><p>{long}</p><p>Call me <em>Ishmael</em>. It cost $5.50 in 1851."
            '<a epub:type="noteref" href="#n">1</a></p><aside epub:type="footnote" id="n">A note.</aside>'
            "<table><tr><td>Ship</td><td>Pequod</td></tr></table>"
            "<p>Tyger Tyger,<br/>burning bright</p>")
    path = write_epub(tmp_path / "book.epub", {"a.xhtml": XHTML.format(body=body),
                                               "b.xhtml": XHTML.format(body="<h1>Two</h1><p>The end.</p>")})
    chunks = chunk_book(read_book(path), VOICE)
    assert len(chunks) > 6
    assert_each_word_in_one_chunk_in_order(chunks, [
        "Loomings", long, "Call me Ishmael. It cost $5.50 in 1851.", "Ship", "Pequod", "Tyger Tyger,",
        "burning bright", "Two", "The end."])
