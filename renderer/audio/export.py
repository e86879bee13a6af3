"""Chapter audio into files: WAV/FLAC through soundfile, MP3 through pydub, and M4B (one file for
the book, AAC, with chapter markers) through pydub and ffmpeg; then tags and cover art (tags.py).

Every file is written under a temporary name and renamed when whole, so a file with its final
name is always complete.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from renderer.audio.assemble import ASSEMBLY_VERSION
from renderer.audio.loudness import mastering_version
from renderer.audio.tags import book_tags, write_tags
from renderer.book import Book, Chapter, ChapterAudio, RendererError
from renderer.store import file_print

FORMATS = ("wav", "flac", "mp3", "m4b")
PER_CHAPTER = ("wav", "flac", "mp3")  # m4b is one file for the whole book
PCM_SUBTYPE = "PCM_16"
# MP3 as ACX takes uploads: 192 kb/s or more, constant bit rate, 44.1 kHz (resampled from 22,050 Hz)
MP3_KBPS = 192
MP3_SAMPLE_RATE = 44_100  # Hz
AAC_BITRATE = "64k"  # mono speech, the common audiobook rate
AUTHOR_TITLE = "author-title"
LAYOUTS = ("flat", AUTHOR_TITLE)  # --layout: files in OUT, or in OUT/Author/Title/
UNKNOWN_AUTHOR = "Unknown Author"  # the folder of a book that names no author
FILENAME_BAD = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def written_print(keys: list[str], fmt: str, loudness: float | None) -> str:
    """The fingerprint of a file made from the takes `keys` as `fmt` at `loudness`: its takes, the
    assembly, the mastering and the encoding (a file written otherwise, such as an MP3 at 96 kb/s
    before 2026-11-30, is remade)."""
    encoding = f"mp3 {MP3_KBPS}k {MP3_SAMPLE_RATE}" if fmt == "mp3" else fmt
    return file_print(keys, encoding, mastering_version(ASSEMBLY_VERSION, loudness))


class ExportError(RendererError):
    """A file could not be written: one line for the user."""


def safe_name(title: str, limit: int = 80) -> str:
    """A title as a file name on any common file system."""
    name = FILENAME_BAD.sub(" ", title).strip(" .")
    return re.sub(r"\s+", " ", name)[:limit].rstrip(" .") or "Untitled"


def layout_folder(root: Path, book: Book) -> Path:
    """Where --layout author-title puts a book's files: ROOT/Author/Title/, as audiobook servers
    (Audiobookshelf, Plex) file them."""
    return root / safe_name(book.author or UNKNOWN_AUTHOR) / safe_name(book.title)


def chapter_filename(chapter: Chapter, fmt: str) -> str:
    return f"{chapter.index:02d} - {safe_name(chapter.title)}.{fmt}"


def book_filename(book: Book) -> str:
    return f"{safe_name(book.title)}.m4b"


def _atomic_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def _finish(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _segment(samples: np.ndarray, sample_rate: int):
    from pydub import AudioSegment

    return AudioSegment(data=_pcm16(samples), sample_width=2, frame_rate=sample_rate, channels=1)


def write_chapter(audio: ChapterAudio, folder: Path, fmt: str, book: Book, narrator: str = "") -> Path:
    """Write one chapter file `NN - Title.fmt` into `folder` (wav, flac or mp3), tagged with the
    chapter's title and number, the book's title, author, year and cover, and `narrator`.
    Returns its path."""
    from mutagen import MutagenError

    path = folder / chapter_filename(audio.chapter, fmt)
    tmp = _atomic_target(path)
    try:
        if fmt in ("wav", "flac"):
            import soundfile

            soundfile.write(tmp, audio.samples, audio.sample_rate, subtype=PCM_SUBTYPE, format=fmt.upper())
        elif fmt == "mp3":
            _segment(audio.samples, audio.sample_rate).export(  # a bit rate alone makes lame write CBR
                tmp, format="mp3", bitrate=f"{MP3_KBPS}k", parameters=["-ar", str(MP3_SAMPLE_RATE)])
        else:
            raise ExportError(f"{fmt}: not a per-chapter format")
        last = max(chapter.index for chapter in book.chapters)  # numbered as in the book
        write_tags(tmp, fmt, book_tags(book, narrator, audio.chapter.title, audio.chapter.index, last))
    except (OSError, MutagenError) as err:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{path}: could not be written: {getattr(err, 'strerror', None) or err}") from err
    return _finish(tmp, path)


def _ffmetadata(chapters: list[ChapterAudio]) -> str:
    """ffmpeg's metadata file with a chapter at each chapter's start, titled; the tags are mutagen's."""
    def esc(text: str) -> str:
        return re.sub(r"([=;#\\\n])", r"\\\1", text)

    lines = [";FFMETADATA1"]
    start = 0
    for audio in chapters:
        end = start + round(audio.seconds * 1000)
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}", f"title={esc(audio.chapter.title)}"]
        start = end
    return "\n".join(lines) + "\n"


def write_book_m4b(book: Book, chapters: list[ChapterAudio], folder: Path, narrator: str = "") -> Path:
    """Write the whole book as one AAC `.m4b` with a chapter marker at each chapter's start, titled,
    and the book's title, author, year and cover, and `narrator`, as tags."""
    from mutagen import MutagenError
    from pydub.utils import get_encoder_name

    path = folder / book_filename(book)
    tmp = _atomic_target(path)
    sample_rate = chapters[0].sample_rate
    samples = np.concatenate([c.samples for c in chapters])
    with tempfile.TemporaryDirectory(dir=folder) as work:
        aac = Path(work) / "audio.m4a"
        meta = Path(work) / "chapters.txt"
        meta.write_text(_ffmetadata(chapters), encoding="utf-8")
        try:
            _segment(samples, sample_rate).export(aac, format="ipod", codec="aac", bitrate=AAC_BITRATE)
            subprocess.run(
                [get_encoder_name(), "-v", "error", "-y", "-i", str(aac), "-i", str(meta),
                 "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1", "-c", "copy",
                 "-f", "mp4", str(tmp)],
                check=True, capture_output=True, text=True,
            )
            write_tags(tmp, "m4b", book_tags(book, narrator))
        except MutagenError as err:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"{path}: could not be tagged: {err}") from err
        except subprocess.CalledProcessError as err:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"{path}: ffmpeg failed: {err.stderr.strip().splitlines()[-1:]}") from err
        except (OSError, FileNotFoundError) as err:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"{path}: could not be written (is ffmpeg installed?): {err}") from err
    return _finish(tmp, path)
