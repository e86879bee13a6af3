"""Mastering (band limit, loudness, true-peak limiter) on synthetic speech-like signals, and the
--loudness values. The written files of a real render are checked in test_quality.py."""
from __future__ import annotations

import numpy as np
import pytest

from renderer.audio.assemble import HEAD_SECONDS, TAIL_SECONDS
from renderer.audio.loudness import (
    ACX_PEAK_DBFS,
    ACX_RMS_DB,
    CEILING_DBTP,
    DEFAULT_LUFS,
    RMS_MARGIN_DB,
    limit,
    loudness_lufs,
    loudness_target,
    master,
    master_samples,
    mastering_version,
    rms_db,
    true_peak_db,
    true_peaks,
)
from renderer.book import Chapter, ChapterAudio, Paragraph, RendererError

RATE = 22_050


def speech_like(level_db: float, seconds: float = 20.0, seed: int = 0) -> np.ndarray:
    """Room tone-free 'speech': syllable-long bursts of noise shaped like a voice's spectrum, with
    pauses, a DC offset and a few loud clicks, at about `level_db` RMS; silent head and tail."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    noise = np.convolve(rng.standard_normal(n), np.hanning(9), mode="same")  # most energy under 3 kHz
    syllables = (rng.random(n // 2000 + 1) < 0.7).repeat(2000)[:n]  # ~90 ms on or off
    voice = noise * syllables
    voice *= 10 ** (level_db / 20) / np.sqrt(np.mean(voice**2))
    voice[rng.integers(0, n, 5)] = 0.95  # clicks: what the limiter is for
    voice += 0.05  # DC offset, as the tiny codec has
    head, tail = np.zeros(int(HEAD_SECONDS * RATE)), np.zeros(int(TAIL_SECONDS * RATE))
    return np.concatenate([head, voice, tail]).astype(np.float32)


@pytest.mark.parametrize("level", [-38.0, -12.0])
def test_quiet_and_loud_chapters_come_out_alike_inside_acx(level):
    out = master_samples(speech_like(level, seed=int(-level)), RATE, DEFAULT_LUFS)
    assert abs(loudness_lufs(out, RATE) - DEFAULT_LUFS) < 1.0
    assert ACX_RMS_DB[0] + 0.5 <= rms_db(out) <= ACX_RMS_DB[1] - 0.5
    assert true_peak_db(out) <= CEILING_DBTP + 1e-3
    assert 20 * np.log10(np.abs(out).max()) <= ACX_PEAK_DBFS


def test_chapters_at_different_levels_land_within_a_decibel():
    levels = [loudness_lufs(master_samples(speech_like(db, seed=i), RATE, DEFAULT_LUFS), RATE)
              for i, db in enumerate((-40.0, -25.0, -8.0))]
    assert max(levels) - min(levels) < 1.0


def test_a_short_chapter_is_turned_up_to_hold_acx_rms():
    """A title-only chapter is mostly head and tail: at -19 LUFS its RMS would be under ACX's -23,
    so it is turned up just enough to sit RMS_MARGIN_DB inside the window, louder than the target."""
    out = master_samples(speech_like(-30.0, seconds=1.4, seed=2), RATE, DEFAULT_LUFS)
    assert abs(rms_db(out) - (ACX_RMS_DB[0] + RMS_MARGIN_DB)) < 0.05
    assert loudness_lufs(out, RATE) > DEFAULT_LUFS + 1.0
    assert true_peak_db(out) <= CEILING_DBTP + 1e-3


def test_a_target_outside_acx_is_taken_as_asked():
    out = master_samples(speech_like(-30.0), RATE, -16.0)  # a podcast's loudness
    assert abs(loudness_lufs(out, RATE) + 16.0) < 0.5
    assert true_peak_db(out) <= CEILING_DBTP + 1e-3


def test_head_and_tail_stay_digital_silence():
    signal = speech_like(-30.0)
    out = master_samples(signal, RATE, DEFAULT_LUFS)
    assert len(out) == len(signal) and out.dtype == np.float32
    assert not out[: int(HEAD_SECONDS * RATE)].any()
    assert np.abs(out[-int(0.5 * RATE):]).max() < 1e-6  # the filters' ring has died away


def test_limiter_touches_only_what_is_near_a_peak():
    t = np.arange(5 * RATE) / RATE
    tone = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    tone[2 * RATE:2 * RATE + 2000] *= 20  # a burst at +6 dBFS
    out = limit(tone, RATE, CEILING_DBTP)
    assert true_peak_db(out) <= CEILING_DBTP + 0.05
    np.testing.assert_array_equal(out[:RATE], tone[:RATE])  # a second before the burst: untouched
    np.testing.assert_array_equal(out[3 * RATE:], tone[3 * RATE:])


def test_true_peak_finds_the_peak_between_samples():
    t = np.arange(RATE) / RATE
    sine = np.sin(2 * np.pi * RATE / 4 * t + np.pi / 4).astype(np.float32)  # samples at +-0.707, peak 1
    assert np.abs(sine).max() < 0.71
    assert true_peaks(sine)[100:-100].max() > 0.99


def test_silence_and_off():
    chapter = Chapter(1, "One", (Paragraph("a"),))
    silent = ChapterAudio(chapter, np.zeros(RATE * 3, np.float32), RATE)
    assert not master(silent, DEFAULT_LUFS).samples.any()
    assert master(silent, None) is silent
    assert mastering_version(2, None) != mastering_version(2, DEFAULT_LUFS) != mastering_version(2, -16.0)


def test_loudness_values():
    assert loudness_target("off") is None and loudness_target("OFF") is None
    assert loudness_target("-19") == -19.0 and loudness_target("-16.5") == -16.5
    for bad in ("loud", "-3", "19", ""):
        with pytest.raises(RendererError, match="loudness"):
            loudness_target(bad)
