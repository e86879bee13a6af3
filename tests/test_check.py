"""`render check` on files written here with soundfile: one that meets ACX, ones that fail it in
each way, and files that are not there or not audio. Rendered files are checked in test_quality.py."""
from __future__ import annotations

import numpy as np
import soundfile
from click.testing import CliRunner
from test_loudness import RATE, speech_like

from renderer.audio.loudness import DEFAULT_LUFS, master_samples
from renderer.check import check_file
from renderer.cli import main


def check(*paths):
    return CliRunner().invoke(main, ["check", *map(str, paths)])


def write(path, samples):
    soundfile.write(path, samples, RATE, subtype="PCM_16")
    return path


def mastered(seed=0):
    return master_samples(speech_like(-30.0, seed=seed), RATE, DEFAULT_LUFS)


def test_a_mastered_file_passes(tmp_path):
    path = write(tmp_path / "good.wav", mastered())
    result = check(path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"PASS {path}: RMS -2") and result.output.count("\n") == 1
    measured = check_file(path)
    assert measured.peak_db <= -3.0 and measured.noise_floor_db == float("-inf")
    assert abs(measured.head_seconds - 0.75) < 0.02 and abs(measured.tail_seconds - 2.0) < 0.05
    assert measured.chapters == 0 and ", 0 chapters" in result.output


def test_mp3s_are_held_to_acx_encoding(tmp_path):
    from pydub import AudioSegment

    from renderer.audio.export import write_chapter
    from renderer.book import ChapterAudio
    from renderer.read import read_book

    (tmp_path / "b.md").write_text("# Book\n\n## One\n\nWords.\n")
    book = read_book(tmp_path / "b.md")
    ours = write_chapter(ChapterAudio(book.chapters[0], mastered(), RATE), tmp_path, "mp3", book)
    wav = AudioSegment.from_wav(write(tmp_path / "good.wav", mastered()))
    low = tmp_path / "low.mp3"
    wav.export(low, format="mp3", bitrate="96k")
    vbr = tmp_path / "vbr.mp3"
    wav.export(vbr, format="mp3", parameters=["-ar", "44100", "-q:a", "2"])
    result = check(ours, low, vbr)
    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 3, result.output
    assert "Error: 2 of 3 file(s) fail ACX" in result.output
    assert lines[0].startswith("PASS ") and lines[0].endswith(", MP3 192 kb/s CBR 44.1 kHz"), lines[0]
    assert lines[1].startswith(f"FAIL {low}")
    assert "failing: MP3 96 kb/s CBR at 22.05 kHz, not 192 kb/s CBR at 44.1 kHz" in lines[1]
    assert lines[2].startswith(f"FAIL {vbr}") and "kb/s VBR at 44.1 kHz, not 192 kb/s CBR" in lines[2]


def test_a_loud_clipped_file_fails_naming_what(tmp_path):
    loud = np.clip(speech_like(-8.0) * 4, -1.0, 1.0)  # clipped at full scale
    path = write(tmp_path / "loud.wav", loud)
    result = check(path)
    assert result.exit_code == 1
    fail_line = result.stdout.strip()
    assert fail_line.startswith(f"FAIL {path}:")
    assert "peak 0.0 dBFS above -3" in fail_line and "RMS" in fail_line.split("failing:")[1]
    assert result.output.count("\n") == 2  # the line, and the summary: no traceback


def test_short_head_long_tail_and_noise_fail(tmp_path):
    good = mastered()
    short_head = write(tmp_path / "head.wav", good[int(0.6 * RATE):])
    long_tail = write(tmp_path / "tail.wav", np.concatenate([good, np.zeros(6 * RATE, np.float32)]))
    hiss = np.random.default_rng(1).standard_normal(len(good)).astype(np.float32) * 10 ** (-50 / 20)
    noisy = write(tmp_path / "noisy.wav", good + hiss)
    result = check(short_head, long_tail, noisy)
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert "failing: head 0.15 s outside 0.5-1 s" in lines[0]
    assert "failing: tail 7.9" in lines[1] and "s outside 1-5 s" in lines[1]
    assert "noise floor -50" in lines[2] and "above -60" in lines[2]
    assert "3 of 3 file(s) fail ACX" in result.output


def test_a_folder_stands_for_its_audio_files_and_errors_are_one_line(tmp_path):
    write(tmp_path / "a.wav", mastered(1))
    write(tmp_path / "b.wav", mastered(2))
    (tmp_path / "notes.txt").write_text("not audio")
    result = check(tmp_path)
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [f"PASS {tmp_path / n}" for n in ("a.wav", "b.wav")]

    result = check(tmp_path / "missing.mp3", tmp_path / "notes.txt", tmp_path / "a.wav")
    assert result.exit_code == 1
    assert f"Error: {tmp_path / 'missing.mp3'}: no such file" in result.output
    assert f"Error: {tmp_path / 'notes.txt'}: not an audio file ffmpeg can read" in result.output
    assert result.stdout.startswith(f"PASS {tmp_path / 'a.wav'}")  # the others are still checked
    assert "Traceback" not in result.output and "2 of 3 file(s)" in result.output

    empty = tmp_path / "empty"
    empty.mkdir()
    result = check(empty)
    assert result.exit_code == 1 and f"{empty}: a folder with no audio files" in result.output
