"""English words for what English books write short: abbreviations, Roman numerals, times, degrees.

`spell_english` runs before numbers become words (normalize.py), so where a rule leaves digits the
number stage spells them ("20°C" -> "20 degrees Celsius" -> "twenty degrees Celsius").
"""
from __future__ import annotations

import re

from num2words import num2words

LANGUAGE = "en"

# Before a name, always: "Mr. Darcy" -> "Mister Darcy".
TITLES = {
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Messrs.": "Messieurs", "Dr.": "Doctor",
    "Prof.": "Professor", "Rev.": "Reverend", "Capt.": "Captain", "Col.": "Colonel",
    "Gen.": "General", "Lt.": "Lieutenant", "Sgt.": "Sergeant", "Gov.": "Governor", "Mt.": "Mount",
    "Ft.": "Fort",
}
# Anywhere; the period may end the sentence too ("apples, pears, etc. Then...").
MAY_END_SENTENCE = {
    "etc.": "et cetera", "&c.": "et cetera", "Jr.": "Junior", "Sr.": "Senior", "Ave.": "Avenue",
    "Rd.": "Road", "Blvd.": "Boulevard",
}
# Anywhere, never at a sentence's end.
INSIDE_SENTENCE = {
    "e.g.": "for example", "i.e.": "that is", "vs.": "versus", "viz.": "namely",
    "approx.": "approximately", "cf.": "compare",
}
SAINT, STREET = "Saint", "Street"  # "St. Paul", "Baker St."

# Words a Roman numeral counts after: "Chapter XIV" -> "Chapter fourteen".
NUMBERED = ("Chapter", "Chap.", "Book", "Bk.", "Part", "Pt.", "Volume", "Vol.", "Act", "Scene",
            "Canto", "Section", "Stave", "Letter", "Psalm", "Article", "Phase", "Stage", "War",
            "Type", "Class", "Episode", "Season", "Plate", "Figure", "Fig.")
# Words before a name that make the numeral after it a ruler's: "King Olaf II".
RULERS = ("King", "Queen", "Pope", "Emperor", "Empress", "Tsar", "Czar", "Tsarina", "Kaiser",
          "Pharaoh", "Prince", "Princess", "Duke", "Duchess", "Sultan")
# Names that take a ruler's numeral without a title: "Henry VIII" -> "Henry the eighth".
REGNAL_NAMES = frozenset({
    "Alexander", "Alfonso", "Amenhotep", "Benedict", "Boniface", "Casimir", "Catherine", "Charles",
    "Christian", "Clement", "Constantine", "Edward", "Elizabeth", "Ferdinand", "Francis",
    "Frederick", "George", "Gregory", "Gustav", "Gustavus", "Harald", "Harold", "Henry",
    "Innocent", "Ivan", "James", "Joseph", "Justinian", "Leo", "Leopold", "Louis", "Magnus", "Mary",
    "Maximilian", "Mehmed", "Murad", "Napoleon", "Nicholas", "Olaf", "Otto", "Paul", "Peter",
    "Philip", "Pius", "Ptolemy", "Ramesses", "Richard", "Robert", "Rudolf", "Selim", "Sigismund",
    "Stephen", "Thutmose", "Umberto", "Urban", "Victor", "Wilhelm", "William",
})
SINGLE_LETTER_NUMERALS = "IVXivx"  # "Appendix C" and "Part D" are letters, not 100 and 500
ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
TIME_WORDS = {0: "o'clock"}  # minutes said as a word: "ten o'clock"
OH = "oh"  # "ten oh five"
MERIDIEM = {"a": "a.m.", "p": "p.m."}
DEGREE, DEGREES = "degree", "degrees"
SCALES = {"C": "Celsius", "F": "Fahrenheit"}
MINUS = "minus"
NUMBER_SIGN = "number"  # "#5", "No. 5"


def _alternatives(words) -> str:
    """A regex alternation of `words` as written and in capitals, longest first."""
    forms = {form for word in words for form in (word, word.upper())}
    return "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))


def _spoken(written: str, table: dict[str, str]) -> str:
    return table.get(written) or table[next(key for key in table if key.upper() == written)]


_NUMERAL = r"(?:[IVXLCDM]+|[ivxlcdm]+)"  # lower case only after NUMBERED words: "Scene ii"
_TITLE_ABBREVIATION = re.compile(rf"(?<![\w.&])({_alternatives(TITLES)})(?!\w)\s*")
_SENTENCE_ABBREVIATION = re.compile(rf"(?<![\w.&])({_alternatives(MAY_END_SENTENCE)})(?!\w)(\s+[A-Z\"']|\s*$)?")
_INSIDE_ABBREVIATION = re.compile(rf"(?<![\w.&])({_alternatives(INSIDE_SENTENCE)})(?!\w)")
_SAINT_STREET = re.compile(r"(?<![\w.])(St|ST)\.(\s+[A-Z])?")
_NUMBER_ABBREVIATION = re.compile(r"(?<![\w.])(?:No|no|NO)\.\s?(?=\d)|#(?=\d)")
_NUMBERED = re.compile(rf"(?<![\w.])({_alternatives(NUMBERED)})(\s+)({_NUMERAL})(?![\w'])")
_REGNAL = re.compile(rf"\b(?:({_alternatives(RULERS)})\s+)?([A-Z][a-z]+)(\s+)([IVXLCDM]+)\b")
_TITLE_NUMERAL = re.compile(r"^([IVXLCDM]+)(?=[.:]\s|[.:]?$)")  # "XIV", "IV. The Chase"
_TIME = re.compile(r"(?<![\d:.,])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])"
                   r"(?:\s*([AaPp])\.?\s?[Mm]\b\.?)?")
_HOUR_MERIDIEM = re.compile(r"(?<![\d:.,])(1[0-2]|0?[1-9])\s*([AaPp])\.?\s?[Mm]\b\.?")
_DEGREES = re.compile(r"(?<![\w.])(-|\u2212)?(\d+(?:\.\d+)?)\s?°\s?([CF](?![a-zA-Z]))?")


def spell_english(text: str, title: bool = False) -> str:
    """English abbreviations, Roman numerals, times, "°" and "#" spelled out; digits are left.

    title: the text is a chapter title, where a leading Roman numeral ("XIV.", "IV. The Chase")
    is a number.
    """
    if title:
        text = _TITLE_NUMERAL.sub(lambda m: (_roman_words(m.group(1)) or m.group()).capitalize(), text)
    text = _NUMBERED.sub(lambda m: m.group(1) + m.group(2) + (_roman_words(m.group(3)) or m.group(3)),
                         text)
    text = _REGNAL.sub(_regnal, text)
    text = _TITLE_ABBREVIATION.sub(lambda m: _spoken(m.group(1), TITLES) + " ", text)
    text = _SAINT_STREET.sub(lambda m: f"{SAINT}{m.group(2)}" if m.group(2) else STREET, text)
    text = _SENTENCE_ABBREVIATION.sub(_sentence_abbreviation, text)
    text = _INSIDE_ABBREVIATION.sub(lambda m: _spoken(m.group(1), INSIDE_SENTENCE), text)
    text = _NUMBER_ABBREVIATION.sub(NUMBER_SIGN + " ", text)
    text = _TIME.sub(_time, text)
    text = _HOUR_MERIDIEM.sub(lambda m: f"{_say(int(m.group(1)))} {MERIDIEM[m.group(2).lower()]}", text)
    return _DEGREES.sub(_degrees, text)


def roman_value(numeral: str) -> int | None:
    """The value of a well-formed Roman numeral ("XIV" -> 14, "xiv" -> 14); None if it is not one."""
    values = [ROMAN_VALUES.get(c) for c in numeral.upper()]
    if not values or None in values:
        return None
    total = sum(-v if v < after else v for v, after in zip(values, values[1:] + [0], strict=True))
    return total if _roman(total) == numeral.upper() else None  # "IIII", "VX" are not numerals


def _roman(value: int) -> str:
    digits = []
    for symbol, amount in (("M", 1000), ("CM", 900), ("D", 500), ("CD", 400), ("C", 100),
                           ("XC", 90), ("L", 50), ("XL", 40), ("X", 10), ("IX", 9), ("V", 5),
                           ("IV", 4), ("I", 1)):
        count, value = divmod(value, amount)
        digits.append(symbol * count)
    return "".join(digits)


def _roman_words(numeral: str, to: str = "cardinal") -> str | None:
    """A numeral as words ("XIV" -> "fourteen"); None when it is not one, or is a lone letter
    that is more likely a letter ("C")."""
    value = roman_value(numeral)
    if value is None or (len(numeral) == 1 and numeral not in SINGLE_LETTER_NUMERALS):
        return None
    return _say(value, to)


def _regnal(match: re.Match) -> str:
    ruler, name, space, numeral = match.groups()
    if ruler is None and name not in REGNAL_NAMES:
        return match.group()
    words = _roman_words(numeral, "ordinal")
    if words is None:
        return match.group()
    return f"{ruler + ' ' if ruler else ''}{name}{space}the {words}"


def _sentence_abbreviation(match: re.Match) -> str:
    """The spoken form, with a period when the abbreviation's one also ended the sentence."""
    after = match.group(2)
    spoken = _spoken(match.group(1), MAY_END_SENTENCE)
    return spoken if after is None else f"{spoken}.{after}"


def _time(match: re.Match) -> str:
    """"10:30" -> "ten thirty", "10:05" -> "ten oh five", "10:00" -> "ten o'clock", "9:00 pm" ->
    "nine p.m."."""
    hour, minutes, meridiem = int(match.group(1)), int(match.group(2)), match.group(3)
    if minutes == 0:
        said = [_say(hour)] if meridiem else [_say(hour), TIME_WORDS[0]]
    else:
        said = [_say(hour), *([OH] if minutes < 10 else []), _say(minutes)]
    if meridiem:
        said.append(MERIDIEM[meridiem.lower()])
    return " ".join(said)


def _degrees(match: re.Match) -> str:
    sign, number, scale = match.groups()
    unit = DEGREE if number == "1" else DEGREES
    said = [MINUS] if sign else []
    return " ".join([*said, number, unit, *([SCALES[scale]] if scale else [])])


def _say(number: int, to: str = "cardinal") -> str:
    return num2words(number, lang=LANGUAGE, to=to)
