"""Audiobook-grade files end to end: a small EPUB with a cover and a date rendered on the tiny models
(their noise is a fine signal for loudness) into an .m4b and MP3s under --layout author-title; the
written files measured after writing (loudness, peaks, room tone), their chapters, tags and cover
read back with ffprobe and mutagen, and `render check` run on them. Then the readers' metadata, and
FLAC and WAV tags, without a render."""
from __future__ import annotations

import base64
import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SAMPLES
from ebooklib import epub
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.wave import WAVE

from renderer.audio.export import write_chapter
from renderer.audio.loudness import (
    ACX_PEAK_DBFS,
    ACX_RMS_DB,
    CEILING_DBTP,
    DEFAULT_LUFS,
    RMS_MARGIN_DB,
    loudness_lufs,
    rms_db,
)
from renderer.book import BookError, ChapterAudio
from renderer.check import check_file
from renderer.cli import main
from renderer.read import read_book

TITLE, AUTHOR, YEAR = "The Keeper's Log", "Ada Lovelace", "1887"
CHAPTERS = [("The Storm", "The wind rose over the harbor."), ("The Morning", "By dawn the storm had passed.")]
COVER = base64.b64decode(  # a 1x1 grey PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg==")
NARRATOR = "en:andrew"  # the default voice's name
LOSSY_RMS_DB = 0.7  # how far MP3 and AAC move a chapter's RMS (MP3 lost 0.45 dB here)


def render(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_chapters", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def decoded(path: Path) -> np.ndarray:
    """The file as the listener hears it: float32 mono at 22,050 Hz, decoded by ffmpeg."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "22050", "-f", "f32le", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, np.float32)


@pytest.fixture(scope="module")
def book_epub(tmp_path_factory) -> Path:
    book = epub.EpubBook()
    book.set_identifier("urn:renderer-test-keeper")
    book.set_title(TITLE)
    book.set_language("en")
    book.add_author(AUTHOR)
    book.add_metadata("DC", "date", f"{YEAR}-03-03")
    book.set_cover("cover.png", COVER, create_page=False)
    pages = []
    for number, (title, text) in enumerate(CHAPTERS, start=1):
        page = epub.EpubHtml(title=title, file_name=f"chapter-{number}.xhtml", lang="en")
        page.content = f"<h1>{title}</h1><p>{text}</p>"
        book.add_item(page)
        pages.append(page)
    book.toc, book.spine = pages, pages
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    path = tmp_path_factory.mktemp("epub") / "keeper.epub"
    epub.write_epub(str(path), book)
    return path


@pytest.fixture(scope="module")
def shelf(tiny_models, book_epub, tmp_path_factory) -> Path:
    """The book's folder under a library root, rendered as .m4b, then as MP3s from the same takes."""
    root = tmp_path_factory.mktemp("library")
    model, codec = tiny_models
    for fmt in ("m4b", "mp3"):
        result = render(book_epub, "--model", model, "--codec", codec, "--out", root, "--layout", "author-title",
                        "--format", fmt, "--keep-runaways", "--retries", "0", "--quiet")
        assert result.exit_code == 0, result.output
    return root / AUTHOR / TITLE


def test_layout_files_the_book_under_author_and_title(shelf):
    names = sorted(p.name for p in shelf.iterdir() if not p.name.startswith("."))
    assert names == ["01 - The Storm.mp3", "02 - The Morning.mp3", f"{TITLE}.m4b"]


def test_m4b_chapters_start_where_the_chapters_do_with_their_titles(shelf):
    m4b = shelf / f"{TITLE}.m4b"
    probe = ffprobe(m4b)
    assert [c["tags"]["title"] for c in probe["chapters"]] == [title for title, _ in CHAPTERS]
    first = len(decoded(shelf / f"01 - {CHAPTERS[0][0]}.mp3")) / 22050  # the first chapter's length
    assert float(probe["chapters"][0]["start_time"]) == 0
    assert abs(float(probe["chapters"][1]["start_time"]) - first) < 0.01  # markers are in milliseconds
    chapters = MP4(m4b).chapters  # read back with mutagen too
    assert [c.title for c in chapters] == [title for title, _ in CHAPTERS]
    assert abs(chapters[1].start - float(probe["chapters"][1]["start_time"])) < 0.01


def test_m4b_tags_and_cover(shelf):
    tags = MP4(shelf / f"{TITLE}.m4b").tags
    assert tags["\xa9nam"] == [TITLE] and tags["\xa9alb"] == [TITLE]
    assert tags["\xa9ART"] == [AUTHOR] and tags["aART"] == [AUTHOR]
    assert tags["\xa9wrt"] == [NARRATOR] and tags["\xa9day"] == [YEAR] and tags["stik"] == [2]
    assert bytes(tags["covr"][0]) == COVER
    assert MP4(shelf / f"{TITLE}.m4b").info.codec.startswith("mp4a")  # AAC


def test_mp3_tags_number_the_chapters_and_carry_the_cover(shelf):
    for number, (title, _) in enumerate(CHAPTERS, start=1):
        tags = MP3(shelf / f"0{number} - {title}.mp3").tags
        assert str(tags["TIT2"]) == title and str(tags["TALB"]) == TITLE and str(tags["TPE1"]) == AUTHOR
        assert str(tags["TRCK"]) == f"{number}/{len(CHAPTERS)}" and str(tags["TCOM"]) == NARRATOR
        assert str(tags["TDRC"]) == YEAR
        assert tags["APIC:Cover"].data == COVER and tags["APIC:Cover"].mime == "image/png"


def test_written_files_meet_acx_and_each_chapter_is_at_the_target_or_held_to_acx(shelf):
    m4b = shelf / f"{TITLE}.m4b"
    audio = decoded(m4b)
    starts = [round(float(c["start_time"]) * 22050) for c in ffprobe(m4b)["chapters"]] + [len(audio)]
    for path, (start, end) in zip(sorted(shelf.glob("*.mp3")), itertools.pairwise(starts), strict=True):
        for samples in (audio[start:end], decoded(path)):  # the chapter in the .m4b, and its MP3
            rms = rms_db(samples)
            assert ACX_RMS_DB[0] <= rms <= ACX_RMS_DB[1]
            assert 20 * np.log10(np.abs(samples).max()) <= ACX_PEAK_DBFS
            # These one-sentence chapters are mostly head and tail, so mastering may turn one up to
            # hold ACX's RMS (test_loudness); equal loudness of ordinary chapters is tested there too.
            at_target = abs(loudness_lufs(samples, 22050) - DEFAULT_LUFS) <= 1.0
            held = abs(rms - (ACX_RMS_DB[0] + RMS_MARGIN_DB)) <= LOSSY_RMS_DB
            assert at_target or held, (path.name, loudness_lufs(samples, 22050), rms)
    assert 20 * np.log10(np.abs(audio).max()) <= CEILING_DBTP + 0.2  # AAC's overshoot, inside ACX's -3
    result = render("check", shelf)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("PASS ") for line in lines)
    assert all(line.endswith(", 0 chapters, MP3 192 kb/s CBR 44.1 kHz") for line in lines[:2])  # ACX's upload spec
    assert lines[-1].endswith(", 2 chapters")  # the .m4b
    assert check_file(m4b).chapters == 2


def test_up_to_date_files_are_remade_when_the_loudness_changes(tiny_models, book_epub, shelf):
    model, codec = tiny_models
    args = [book_epub, "--model", model, "--codec", codec, "--out", shelf.parents[1], "--layout", "author-title",
            "--format", "m4b", "--keep-runaways", "--retries", "0", "--quiet"]
    assert "0 file(s) written, 2 already up to date" in render(*args).output  # chapters, in the one .m4b
    result = render(*args, "--loudness", "loud")
    assert result.exit_code != 0 and "Error: loudness 'loud': expected a LUFS target" in result.output
    result = render(*args, "--loudness", "-16")  # outside ACX's window: taken as asked
    assert result.exit_code == 0 and "1 file(s) written, 0 already up to date" in result.output
    audio = decoded(shelf / f"{TITLE}.m4b")
    assert abs(loudness_lufs(audio, 22050) + 16) < 1.0
    status = render("status", shelf)
    assert status.output.strip().endswith("4/4 chunks done") and "m4b: complete" in status.output


def test_epub_cover_and_markdown_front_matter(tmp_path):
    book = read_book(SAMPLES / "two-chapters.epub")
    assert book.cover_type == "image/png" and book.cover.startswith(b"\x89PNG") and book.year == ""
    (tmp_path / "art.png").write_bytes(COVER)
    text = "---\ntitle: T\nauthor: A\ndate: 2019-05-01\ncover: art.png\n---\n\n# One\n\nWords.\n"
    (tmp_path / "b.md").write_text(text)
    book = read_book(tmp_path / "b.md")
    assert (book.year, book.cover, book.cover_type) == ("2019", COVER, "image/png")
    (tmp_path / "c.md").write_text(text.replace("art.png", "missing.jpg"))
    with pytest.raises(BookError, match=r"c\.md: front matter cover 'missing\.jpg': cannot read"):
        read_book(tmp_path / "c.md")
    (tmp_path / "d.md").write_text(text.replace("art.png", "b.md"))
    with pytest.raises(BookError, match="is not a JPEG or PNG"):
        read_book(tmp_path / "d.md")


def test_flac_and_wav_tags(tmp_path):
    (tmp_path / "art.png").write_bytes(COVER)
    (tmp_path / "b.md").write_text(f"---\ntitle: {TITLE}\nauthor: {AUTHOR}\nyear: {YEAR}\ncover: art.png\n---\n\n"
                                   "# One\n\nWords.\n\n# Two\n\nMore words.\n")
    book = read_book(tmp_path / "b.md")
    audio = ChapterAudio(book.chapters[1], np.zeros(22050, np.float32), 22050)
    flac = FLAC(write_chapter(audio, tmp_path, "flac", book, NARRATOR))
    assert flac["TITLE"] == ["Two"] and flac["ALBUM"] == [TITLE] and flac["ARTIST"] == [AUTHOR]
    assert flac["TRACKNUMBER"] == ["2"] and flac["TRACKTOTAL"] == ["2"] and flac["COMPOSER"] == [NARRATOR]
    assert flac["DATE"] == [YEAR] and flac.pictures[0].data == COVER
    wav = WAVE(write_chapter(audio, tmp_path, "wav", book, NARRATOR))
    assert str(wav.tags["TIT2"]) == "Two" and str(wav.tags["TRCK"]) == "2/2" and wav.tags["APIC:Cover"].data == COVER
