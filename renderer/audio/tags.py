"""Tags and cover art written into finished files with mutagen: MP4 atoms for M4B, ID3 for MP3 and
WAV, Vorbis comments and a picture block for FLAC.

What goes where follows what audiobook players and servers read (Apple Books, Audiobookshelf):
the author as artist and album artist, the book as album, the narrator as composer (the tag that
has become the narrator's by custom), "Audiobook" as genre, and the cover as front-cover art.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from renderer.book import Book

GENRE = "Audiobook"
MP4_AUDIOBOOK = 2  # the `stik` media kind that files an .m4b under audiobooks
ID3_VERSION = 3  # ID3v2.3: what Windows and older players read
ID3_UTF16 = 1  # ID3v2.3 text encoding that carries any title
FRONT_COVER = 3  # the picture type of ID3 APIC and FLAC picture blocks


@dataclass(frozen=True)
class Tags:
    """What a file says about itself. For a chapter file `title` is the chapter's, for an .m4b the
    book's; `track`/`tracks` number the chapter files (0: not numbered)."""

    title: str
    book: str
    author: str
    narrator: str = ""
    year: str = ""
    track: int = 0
    tracks: int = 0
    cover: bytes | None = field(default=None, repr=False)  # JPEG or PNG
    cover_type: str = ""  # "image/jpeg" or "image/png"


def book_tags(book: Book, narrator: str, title: str | None = None, track: int = 0, tracks: int = 0) -> Tags:
    """The tags of a file of `book`: the book's own, or a chapter file's with its `title` and number."""
    return Tags(title=title or book.title, book=book.title, author=book.author, narrator=narrator, year=book.year,
                track=track, tracks=tracks, cover=book.cover, cover_type=book.cover_type)


def write_tags(path: Path, fmt: str, tags: Tags) -> None:
    """Write `tags` into the finished `fmt` file at `path` (any name: a file written under a temporary
    one is tagged before it is renamed). Raises OSError (and mutagen's errors, all MutagenError)."""
    if fmt == "m4b":
        _mp4(path, tags)
    elif fmt == "flac":
        _flac(path, tags)
    else:
        _id3(path, tags, wave=fmt == "wav")


def _mp4(path: Path, tags: Tags) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    file = MP4(path)
    values = {"\xa9nam": tags.title, "\xa9alb": tags.book, "\xa9ART": tags.author, "aART": tags.author,
              "\xa9wrt": tags.narrator, "\xa9day": tags.year, "\xa9gen": GENRE}
    file.tags.update({key: [value] for key, value in values.items() if value})
    file.tags["stik"] = [MP4_AUDIOBOOK]
    if tags.cover:
        kind = MP4Cover.FORMAT_PNG if tags.cover_type == "image/png" else MP4Cover.FORMAT_JPEG
        file.tags["covr"] = [MP4Cover(tags.cover, imageformat=kind)]
    file.save()


def _id3(path: Path, tags: Tags, wave: bool) -> None:
    """ID3v2.3 frames, in an MP3 or (`wave`) in a WAV file's `id3 ` chunk."""
    from mutagen import id3
    from mutagen.mp3 import MP3
    from mutagen.wave import WAVE

    file = (WAVE if wave else MP3)(path)
    if file.tags is None:
        file.add_tags()
    texts = {id3.TIT2: tags.title, id3.TALB: tags.book, id3.TPE1: tags.author, id3.TPE2: tags.author,
             id3.TCOM: tags.narrator, id3.TDRC: tags.year, id3.TCON: GENRE,
             id3.TRCK: f"{tags.track}/{tags.tracks}" if tags.tracks else str(tags.track or "")}
    for frame, text in texts.items():
        if text:
            file.tags.add(frame(encoding=ID3_UTF16, text=[text]))
    if tags.cover:
        file.tags.add(id3.APIC(encoding=ID3_UTF16, mime=tags.cover_type, type=FRONT_COVER, desc="Cover",
                               data=tags.cover))
    file.save(v2_version=ID3_VERSION)


def _flac(path: Path, tags: Tags) -> None:
    from mutagen.flac import FLAC, Picture

    file = FLAC(path)
    values = {"TITLE": tags.title, "ALBUM": tags.book, "ARTIST": tags.author, "ALBUMARTIST": tags.author,
              "COMPOSER": tags.narrator, "DATE": tags.year, "GENRE": GENRE,
              "TRACKNUMBER": str(tags.track or ""), "TRACKTOTAL": str(tags.tracks or "")}
    file.update({key: value for key, value in values.items() if value})
    if tags.cover:
        picture = Picture()
        picture.type, picture.mime, picture.desc, picture.data = FRONT_COVER, tags.cover_type, "Cover", tags.cover
        file.add_picture(picture)
    file.save()
