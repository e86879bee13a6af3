"""Book text in, text the speech model reads well out: plain punctuation, numbers as words.

The model was trained on plain transcripts, so typographic quotes, dashes, abbreviations, symbols
and digits are turned into the forms a reader would say. A language's own spelling rules
(WORD_RULES: English's abbreviations, Roman numerals, times) run first; then numbers become words
through num2words in the book's language; for a language num2words does not know, digits stay.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal

from num2words import CONVERTER_CLASSES, num2words

from renderer.text.english import spell_english

# Typographic characters the model reads badly, and their plain forms.
PLAIN_PUNCTUATION = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
    "\u2044": "/",  # fraction slash, which NFKC leaves in "1⁄2"
})
DASHES = "\u2012\u2013\u2014\u2015\u2212"  # figure, en, em, horizontal bar, minus
INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060\ufeff]")  # soft hyphen, zero-width, marks
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# A language's own spelling rules: (text, is a chapter title) -> text, before numbers are spelled.
WORD_RULES: dict[str, Callable[[str, bool], str]] = {"en": spell_english}
AND_WORDS = {"en": "and", "de": "und", "fr": "et", "es": "y", "it": "e", "pt": "e", "nl": "en"}
PAUSE = ", "  # what a line break inside a paragraph (verse, a table row) becomes, unless punctuated
PAUSING_PUNCTUATION = frozenset(".,;:!?)]\"'-")  # a line ending in one needs no extra pause

CURRENCY_CODES = {"$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY"}
PERCENT_WORDS = {"en": "percent", "de": "Prozent", "fr": "pour cent", "es": "por ciento",
                 "it": "per cento", "pt": "por cento", "nl": "procent"}
RANGE_WORDS = {"en": "to", "de": "bis"}  # "1914-1918" is read "1914 to 1918"
YEAR_RANGE = (1100, 2099)  # English four-digit numbers read as years ("eighteen fifty-one")
MAX_DIGITS_AS_NUMBER = 12  # longer digit runs (phone, ISBN) are read digit by digit
NUM2WORDS_ERRORS = (NotImplementedError, OverflowError, ValueError, TypeError, IndexError)

_MONEY = re.compile(r"([$£€¥])\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?(?!\d)")
_PERCENT = re.compile(r"(?<![\d.,])(\d+(?:\.\d+)?)\s?%")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECADE = re.compile(r"\b(1[1-9]\d0|20\d0)'?s\b")
_SHORT_DECADE = re.compile(r"(?<![\w'])'?([1-9]0)'?s\b")  # "the '80s", "in his 80s"
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,]\d)")
_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?!\.?\d)")
_INTEGER = re.compile(r"(?<!\w)\d+")  # not after a letter: "MP3" and "B12" stay
_NUMBER_RANGE = re.compile(rf"(?<![\d-])(\d{{1,4}})\s*[-{DASHES}]\s*(\d{{1,4}})(?![\d-])")
_DASH = re.compile(rf"\s*(?:[{DASHES}]+|-{{2,}})\s*")  # "--" is the ASCII em dash
_ELLIPSIS = re.compile(r"\.(?:\s?\.){2,}")
_LINE_BREAK = re.compile(r"\s*\n\s*")
_AMPERSAND = re.compile(r"\s*&\s*")
_PERCENT_SIGN = re.compile(r"\s*%")  # one left after the numbers: "the % sign"


def normalize(text: str, language: str, title: bool = False) -> str:
    """Clean one paragraph (or title) of book text for speech.

    text: as the book has it, lines of verse or table cells parted by "\n".
    language: BCP 47 tag ("en", "en-GB"); "" or unknown leaves digits. title: `text` is a chapter
    title (a leading Roman numeral is a number there).
    Returns one line: NFKC-folded, plain quotes and dashes, "..." for ellipses, a comma where a
    line ended without punctuation, the language's abbreviations, symbols and numbers spelled out,
    whitespace collapsed.
    """
    text = unicodedata.normalize("NFKC", INVISIBLE.sub("", text))
    text = CONTROL.sub(" ", text).translate(PLAIN_PUNCTUATION)
    text = _LINE_BREAK.sub(_line_pause, text)
    base = language.split("-")[0].lower()
    if base in WORD_RULES:
        text = WORD_RULES[base](text, title)
    if base in AND_WORDS:
        text = _AMPERSAND.sub(f" {AND_WORDS[base]} ", text)
    lang = _num2words_language(language)
    if lang:
        text = _numbers_to_words(text, lang)
    if base in PERCENT_WORDS:
        text = _PERCENT_SIGN.sub(f" {PERCENT_WORDS[base]}", text)
    text = _DASH.sub(" - ", text)  # a spaced hyphen: the model pauses on it
    text = _ELLIPSIS.sub("...", text)
    return " ".join(text.split())


def _line_pause(match: re.Match) -> str:
    """A line break as a pause: a comma, unless the line already ends in punctuation."""
    before = match.string[match.start() - 1] if match.start() else ""
    return " " if before in PAUSING_PUNCTUATION or not before else PAUSE


def _num2words_language(language: str) -> str | None:
    """The num2words code for a BCP 47 tag, or None when num2words lacks the language."""
    tag = language.replace("-", "_")
    for code in (tag, tag.split("_")[0].lower()):
        if code in CONVERTER_CLASSES:
            return code
    return None


def _numbers_to_words(text: str, lang: str) -> str:
    """Spell out money, percentages, ordinals, years and plain numbers, in that order."""
    base = lang.split("_")[0]
    text = _MONEY.sub(lambda m: _money(m, lang), text)
    if base in PERCENT_WORDS:
        text = _PERCENT.sub(lambda m: f"{_say(Decimal(m.group(1)), lang)} {PERCENT_WORDS[base]}",
                            text)
    if base in RANGE_WORDS:
        text = _NUMBER_RANGE.sub(rf"\1 {RANGE_WORDS[base]} \2", text)
    english = base == "en"
    if english:  # these spellings are English ones
        text = _ORDINAL.sub(lambda m: _say(int(m.group(1)), lang, "ordinal"), text)
        text = _DECADE.sub(lambda m: _plural(_say(int(m.group(1)), lang, "year")), text)
        text = _SHORT_DECADE.sub(lambda m: _plural(_say(int(m.group(1)), lang)), text)
        text = _GROUPED.sub(lambda m: m.group().replace(",", ""), text)
    text = _DECIMAL.sub(lambda m: _say(Decimal(m.group()), lang), text)
    return _INTEGER.sub(lambda m: _integer(m, lang, years=english), text)


def _money(match: re.Match, lang: str) -> str:
    """"$5" -> "five dollars", "$5.50" -> "five dollars, fifty cents"; a plain number if unknown."""
    code = CURRENCY_CODES[match.group(1)]
    whole, cents = match.group(2).replace(",", ""), match.group(3)
    amount = Decimal(f"{whole}.{cents}" if cents else whole)
    try:
        if cents and int(cents):
            return num2words(amount, lang=lang, to="currency", currency=code)
        converter = CONVERTER_CLASSES[lang]  # whole amounts: no "zero cents"
        unit = converter.CURRENCY_FORMS[code][0]
        return f"{converter.to_cardinal(int(whole))} {converter.pluralize(int(whole), unit)}"
    except NUM2WORDS_ERRORS + (KeyError, AttributeError):  # no such currency in this language
        return _say(amount, lang)


def _integer(match: re.Match, lang: str, years: bool) -> str:
    """One run of digits as words: a year if `years` and it looks like one, else a cardinal."""
    digits = match.group()
    if len(digits) > MAX_DIGITS_AS_NUMBER or (len(digits) > 1 and digits.startswith("0")):
        words = " ".join(_say(int(d), lang) for d in digits)
    elif years and len(digits) == 4 and YEAR_RANGE[0] <= int(digits) <= YEAR_RANGE[1]:
        words = _say(int(digits), lang, "year")
    else:
        words = _say(int(digits), lang)
    following = match.string[match.end():match.end() + 1]
    return words + " " if following.isalpha() else words  # "10am" -> "ten am"


def _say(number: int | Decimal, lang: str, to: str = "cardinal") -> str:
    """num2words, or the number's digits where num2words cannot say it."""
    try:
        return num2words(number, lang=lang, to=to)
    except NUM2WORDS_ERRORS:
        return str(number)


def _plural(words: str) -> str:
    """"nineteen eighty" -> "nineteen eighties"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"
