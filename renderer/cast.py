"""Who speaks each line of a script: a cast maps speakers to voices.

A cast is TOML, one speaker a line, `HAMLET = "en:andrew"` (a name with spaces or `&` in quotes:
`"FIRST GRAVEDIGGER" = "en:katie"`), in the script's front matter under `[cast]` or in a side
file (`--cast FILE`: its `[cast]` table, else its top level), whose lines win over the front
matter's. Names match the script's tags in any case. Two names are settings as well: `default`,
the voice of every speaker the cast does not list, and `narrator`, the voice of chapter titles
and of stage directions when they are narrated (else the default voice, else --voice).
A joint speech (`A & B`) is spoken in the voice cast for `A & B`, else in its first speaker's.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from renderer.book import Book, RendererError, Voice
from renderer.read.plain import read_user_file
from renderer.read.script import DIRECTION, JOINT, parse_script, read_toml, speakers_of
from renderer.speech.voices import VoiceError, resolve_voice

CAST_TABLE = "cast"
DEFAULT = "default"  # the voice of speakers the cast does not list
NARRATOR = "narrator"  # the voice of titles and narrated stage directions
SKIP, NARRATE = "skip", "narrate"  # what becomes of stage directions
DIRECTIONS = (SKIP, NARRATE)


class CastError(RendererError):
    """A cast that cannot voice the script: one line naming the file, the line and the problem."""


@dataclass(frozen=True)
class Cast:
    """The voices of a script's speakers; `voice_for` says who reads a paragraph."""

    voices: Mapping[str, Voice]  # by name case-folded, `default` and `narrator` among them
    narrator: Voice  # titles, narrated stage directions, text with no speaker
    directions: str = SKIP  # SKIP or NARRATE

    @property
    def default(self) -> Voice | None:
        return self.voices.get(DEFAULT)

    def speaks(self, speaker: str | None) -> bool:
        """Whether a paragraph of this speaker is spoken at all: stage directions only if narrated."""
        return speaker != DIRECTION or self.directions == NARRATE

    def voice_for(self, speaker: str | None) -> Voice:
        """The voice of a paragraph by `speaker` (as tagged; DIRECTION or None: the narrator).

        Raises CastError for a speaker the cast does not list when it has no default voice.
        """
        if speaker is None or speaker == DIRECTION:
            return self.narrator
        for name in (speaker, speakers_of(speaker)[0]):
            if (voice := self.voices.get(_key(name))) is not None:
                return voice
        if self.default is None:
            raise CastError(f"no voice for speaker {speaker!r}: the cast lists neither them nor a {DEFAULT} voice")
        return self.default


def load_cast(book: Book, voice: Voice, cast_file: Path | None = None, directions: str = SKIP,
              model: str | None = None, codec: str | None = None) -> Cast | None:
    """The cast of `book`: its script's front matter `[cast]`, then `cast_file`'s lines over it.

    voice: the narrator when the cast names neither a narrator nor a default (the --voice).
    model, codec: --model / --codec, overriding every cast voice's. Every speaker of `book` is
    checked here, before any model loads. Returns None for a book that is not a script (no
    paragraph has a speaker) when no cast file is given: every chunk is then `voice`'s.

    Raises CastError, one line naming the file, the line and the problem: a cast that does not
    parse, a value that is not a voice in quotes, a voice or speaker the models do not have, a
    name cast twice, a speaker of the book with no voice and no default.
    """
    if directions not in DIRECTIONS:
        raise CastError(f"directions {directions!r}: expected one of {', '.join(DIRECTIONS)}")
    script = parse_script(book.path) if _speakers(book) else None
    if script is None and cast_file is None:
        return None
    specs: dict[str, tuple[str, Path, int]] = {}  # name case-folded -> (voice as written, file, line)
    if script is not None and script.front_matter:
        data, lines = read_toml(script.front_matter, book.path, script.front_matter_line, CastError)
        specs.update(_entries(data.get(CAST_TABLE, {}), CAST_TABLE, lines, book.path))
    if cast_file is not None:
        data, lines = read_toml(read_user_file(cast_file, "cast", CastError), cast_file, 1, CastError)
        table = CAST_TABLE if isinstance(data.get(CAST_TABLE), dict) else ""
        specs.update(_entries(data.get(CAST_TABLE) if table else data, table, lines, cast_file))
    voices = {name: _voice(spec, source, line, model, codec) for name, (spec, source, line) in specs.items()}
    cast = Cast(voices, voices.get(NARRATOR) or voices.get(DEFAULT) or voice, directions)
    for speaker in _speakers(book):
        try:
            cast.voice_for(speaker)
        except CastError as error:
            line = script.first_lines.get(speaker) if script else None
            raise CastError(f"{book.path}{f', line {line}' if line else ''}: {error}") from None
    return cast


def _key(name: str) -> str:
    """A name as the cast looks it up: any case, any spacing ("Rosencrantz&Guildenstern")."""
    return f" {JOINT} ".join(" ".join(part.split()) for part in speakers_of(name)).casefold()


def _speakers(book: Book) -> list[str]:
    """The book's speakers as tagged, in order of their first speech; stage directions aside."""
    found = (p.speaker for chapter in book.chapters for p in chapter.paragraphs)
    return list(dict.fromkeys(s for s in found if s is not None and s != DIRECTION))


def _entries(table: object, name: str, lines: dict[tuple[str, str], int],
             path: Path) -> dict[str, tuple[str, Path, int]]:
    """A cast table's lines as name case-folded -> (voice as written, file, line number)."""
    where = lines.get(("", name), 1)
    if not isinstance(table, dict):
        raise CastError(f"{path}, line {where}: {name} must be a table of 'NAME = \"voice\"' lines")
    entries: dict[str, tuple[str, Path, int]] = {}
    for speaker, spec in table.items():
        line = lines.get((name, speaker), where)
        if not isinstance(spec, str):
            raise CastError(f"{path}, line {line}: {speaker}: expected a voice in quotes, like \"en:andrew\"")
        key = _key(speaker)
        if key in entries:
            raise CastError(f"{path}, line {line}: {speaker} is cast twice (also on line {entries[key][2]})")
        entries[key] = (spec, path, line)
    return entries


def _voice(spec: str, path: Path, line: int, model: str | None, codec: str | None) -> Voice:
    try:
        return resolve_voice(spec, model, codec)
    except VoiceError as error:
        raise CastError(f"{path}, line {line}: {error}") from None
