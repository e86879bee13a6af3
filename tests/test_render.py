"""End to end through the real CLI: the two-chapter sample rendered on the tiny models (real vLLM
CPU engine, real NeMo codec) into every format, then checked as files.

Random weights never say END_OF_SPEECH, so these renders pass --keep-runaways: each chunk is cut at
its token budget and kept. The default policy (retry, then fail the chapter) is tested on its own.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SAMPLES

from renderer import render as render_module
from renderer.audio.assemble import (
    CROSSFADE_SECONDS,
    HEAD_SECONDS,
    PARAGRAPH_PAUSE_SECONDS,
    TAIL_SECONDS,
    TITLE_PAUSE_SECONDS,
)
from renderer.cli import main
from renderer.codec import SAMPLE_RATE, SAMPLES_PER_FRAME
from renderer.read import read_book
from renderer.render import CHAPTER_NICENESS, RenderOptions, chapter_pool, render_book
from renderer.speech.engine import EngineOptions
from renderer.speech.voices import resolve_voice
from renderer.store import STORE_DIR, TakeStore, take_key
from renderer.text.chunk import chunk_book

BOOK = SAMPLES / "two-chapters.md"
CHAPTER_FILES = ["01 - Chapter One The Storm", "02 - Chapter Two The Morning"]


def render(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def out(tiny_models, tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("render") / "two-chapters"


def run_format(tiny_models, out: Path, fmt: str):
    model, codec = tiny_models
    return render(BOOK, "--voice", "en", "--model", model, "--codec", codec, "--out", out, "--format", fmt,
                  "--keep-runaways", "--retries", "0", "--quiet")


def expected_samples(out: Path, model: Path) -> dict[int, int]:
    """Each chapter's length in samples, from the codes in the store: 1,764 samples a frame, less a
    crossfade at each join inside a paragraph, plus the pauses, head and tail."""
    voice = resolve_voice("en", str(model), "unused")
    settings = EngineOptions(retries=0, keep_runaways=True).take_settings()
    store = TakeStore(out)
    fade = round(CROSSFADE_SECONDS * SAMPLE_RATE)
    totals: dict[int, int] = {}
    chunks = chunk_book(read_book(BOOK), voice)
    for chapter in sorted({c.chapter for c in chunks}):
        mine = [c for c in chunks if c.chapter == chapter]
        lengths = [store.load(c, take_key(c, settings)).codes.shape[1] * SAMPLES_PER_FRAME for c in mine]
        total = round(HEAD_SECONDS * SAMPLE_RATE) + round(TAIL_SECONDS * SAMPLE_RATE) + sum(lengths)
        for i, chunk in enumerate(mine[:-1]):
            if chunk.is_title:
                total += round(TITLE_PAUSE_SECONDS * SAMPLE_RATE)
            elif chunk.last_in_paragraph:
                total += round(PARAGRAPH_PAUSE_SECONDS * SAMPLE_RATE)
            else:
                total -= min(fade, sum(lengths[j] for j in range(i + 1) if mine[j].paragraph == chunk.paragraph)
                             , lengths[i + 1])
        totals[chapter] = total
    return totals


def test_chapter_workers_run_below_the_engines_priority():
    pool = chapter_pool()
    try:
        assert pool.submit(os.nice, 0).result() == min(19, os.nice(0) + CHAPTER_NICENESS)
    finally:
        pool.shutdown()


def test_wav_one_file_per_chapter_with_lengths_from_the_codes(tiny_models, out):
    result = run_format(tiny_models, out, "wav")
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.wav")) == CHAPTER_FILES
    assert re.search(r"9 chunks: 9 rendered, 0 reused", result.output)
    expected = expected_samples(out, tiny_models[0])
    for index, name in enumerate(CHAPTER_FILES, start=1):
        info = soundfile.info(out / f"{name}.wav")
        assert info.samplerate == SAMPLE_RATE and info.channels == 1
        assert info.frames == expected[index]
        audio, _ = soundfile.read(out / f"{name}.wav")
        assert np.abs(audio).max() < 1.0  # no clipping
        assert np.abs(audio[: int(0.4 * SAMPLE_RATE)]).max() == 0  # head silence


def test_flac_reuses_every_stored_chunk(tiny_models, out):
    result = run_format(tiny_models, out, "flac")
    assert result.exit_code == 0, result.output
    assert "0 rendered, 9 reused" in result.output
    for name in CHAPTER_FILES:
        wav, _ = soundfile.read(out / f"{name}.wav", dtype="int16")
        flac, rate = soundfile.read(out / f"{name}.flac", dtype="int16")
        assert rate == SAMPLE_RATE
        # Lossless, from the same codes; decode batches differ between runs, which moves a sample by
        # a rounding step at most.
        assert wav.shape == flac.shape
        np.testing.assert_allclose(flac, wav, atol=2, rtol=0)


def test_two_decoding_threads_write_what_one_writes(tiny_models, out, tmp_path, monkeypatch):
    model, codec = tiny_models
    monkeypatch.setattr(render_module, "DECODE_TOGETHER_FRAMES", 1)  # each take handed over alone: both threads busy
    written = {}
    for threads in (1, 2):
        shutil.copytree(out / STORE_DIR, tmp_path / str(threads) / STORE_DIR)  # the takes, not the chapters
        engine = EngineOptions(retries=0, keep_runaways=True, decode_threads=threads)
        options = RenderOptions(voice=resolve_voice("en", str(model), str(codec)), out=tmp_path / str(threads),
                                engine=engine, progress=False)
        report = render_book(read_book(BOOK), options)
        assert report.reused == report.chunks == 9 and report.decode_fill > 0
        written[threads] = {p.name: soundfile.read(p)[0] for p in report.written}
    assert written[1].keys() == written[2].keys() and len(written[1]) == 2
    assert all(np.array_equal(written[1][name], written[2][name]) for name in written[1])


def ffprobe(path: Path) -> dict:
    text = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_chapters", "-of", "json", str(path)],
                          check=True, capture_output=True, text=True).stdout
    return json.loads(text)


def test_mp3_one_file_per_chapter_with_tags(tiny_models, out):
    result = run_format(tiny_models, out, "mp3")
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in out.glob("*.mp3")) == CHAPTER_FILES
    for index, name in enumerate(CHAPTER_FILES, start=1):
        probe = ffprobe(out / f"{name}.mp3")["format"]
        wav_seconds = soundfile.info(out / f"{name}.wav").duration
        assert abs(float(probe["duration"]) - wav_seconds) < 0.1  # an MP3 frame of padding at most
        assert probe["tags"]["track"] == f"{index}/{len(CHAPTER_FILES)}" and probe["tags"]["album"] == "The Lighthouse Keeper"


def test_m4b_one_file_with_a_marker_at_each_chapter(tiny_models, out):
    result = run_format(tiny_models, out, "m4b")
    assert result.exit_code == 0, result.output
    files = list(out.glob("*.m4b"))
    assert [f.name for f in files] == ["The Lighthouse Keeper.m4b"]
    probe = ffprobe(files[0])
    chapters = probe["chapters"]
    assert [c["tags"]["title"] for c in chapters] == ["Chapter One: The Storm", "Chapter Two: The Morning"]
    first = soundfile.info(out / f"{CHAPTER_FILES[0]}.wav").duration
    assert float(chapters[0]["start_time"]) == 0
    assert abs(float(chapters[1]["start_time"]) - first) < 0.01
    total = sum(soundfile.info(out / f"{n}.wav").duration for n in CHAPTER_FILES)
    assert abs(float(probe["format"]["duration"]) - total) < 0.1
    assert probe["format"]["tags"]["title"] == "The Lighthouse Keeper"
    assert not list(out.glob(".*.partial"))  # no half-written file left behind


def test_chapters_option_renders_only_those(tiny_models, out, tmp_path):
    only = tmp_path / "only"
    shutil.copytree(out / STORE_DIR, only / STORE_DIR)  # the takes are there: nothing to generate
    model, codec = tiny_models
    result = render(BOOK, "--model", model, "--codec", codec, "--out", only, "--chapters", "2", "--keep-runaways",
                    "--retries", "0", "--quiet")
    assert result.exit_code == 0, result.output
    assert [p.stem for p in only.glob("*.wav")] == [CHAPTER_FILES[1]]  # numbered as in the book
    assert "0 rendered, 4 reused" in result.output


def test_runaway_chunks_fail_their_chapter_by_default(tiny_models, short_book, tmp_path):
    model, codec = tiny_models
    result = render(short_book, "--model", model, "--codec", codec, "--out", tmp_path / "o", "--retries", "1",
                    "--quiet")
    assert result.exit_code == 1
    # Which chunks run away is up to the random weights: the title, a paragraph, or several.
    failed = re.findall(r'chapter 1, chunk (\d): no end of speech after 2 tries \(the model ran on\): "([^"]*)"',
                        result.output)
    assert failed and set(failed) <= {("1", "Only"), ("2", "The lamp was lit at dusk."),
                                      ("3", "It burned until the morning came.")}
    assert "their chapters were not written" in result.output
    assert not list((tmp_path / "o").glob("*.wav"))


def test_a_broken_codec_file_is_one_clear_line(tiny_models, short_book, tmp_path):
    """The codec loads on a thread of its own while the engine starts; its error still ends the render
    with one line."""
    model, _ = tiny_models
    broken = tmp_path / "broken.nemo"
    broken.write_bytes(b"not a codec")
    result = render(short_book, "--model", model, "--codec", broken, "--out", tmp_path / "o", "--quiet")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(broken) in errors[0] and "could not be loaded" in errors[0]
    assert "Traceback" not in result.output
