"""Chunks' audio into one chapter: equal-power crossfades inside a paragraph, pauses between
paragraphs and after the title, room tone at the head and tail, and no clipping."""
from __future__ import annotations

import numpy as np

from renderer.book import Chapter, ChapterAudio, Take

ASSEMBLY_VERSION = 2  # bump when a change here or in loudness.py changes the audio: written files are then remade
CROSSFADE_SECONDS = 0.04  # between chunks of one paragraph: hides the seam, keeps the words
PARAGRAPH_PAUSE_SECONDS = 0.6
TITLE_PAUSE_SECONDS = 1.2  # after the spoken chapter title
# Room tone inside ACX's windows (head 0.5-1 s, tail 1-5 s) with room for lossy encoders' delay and
# a soft first or last word.
HEAD_SECONDS = 0.75  # silence before the first word
TAIL_SECONDS = 2.0  # silence after the last word
PEAK_CEILING = 0.98  # full scale: louder chapters are scaled down whole, never clipped


def crossfade(a: np.ndarray, b: np.ndarray, samples: int) -> np.ndarray:
    """a then b, overlapped by `samples` (capped at either's length) with an equal-power fade."""
    n = min(samples, len(a), len(b))
    if n == 0:
        return np.concatenate([a, b])
    t = np.linspace(0.0, np.pi / 2, n, dtype=np.float32)
    middle = a[-n:] * np.cos(t) + b[:n] * np.sin(t)
    return np.concatenate([a[:-n], middle, b[n:]])


def gap_after(take: Take) -> float:
    """Seconds of silence after a take; 0 means it crossfades into the next."""
    if take.chunk.is_title:
        return TITLE_PAUSE_SECONDS
    return PARAGRAPH_PAUSE_SECONDS if take.chunk.last_in_paragraph else 0.0


def assemble_chapter(chapter: Chapter, takes: list[Take], sample_rate: int) -> ChapterAudio:
    """One chapter's audio from its takes (any order; each with `audio` set).

    Returns float32 mono at `sample_rate`: head silence, the takes in chunk order, tail silence.
    """
    takes = sorted(takes, key=lambda t: t.chunk.index)
    fade = round(CROSSFADE_SECONDS * sample_rate)
    pieces: list[np.ndarray] = [np.zeros(round(HEAD_SECONDS * sample_rate), np.float32)]
    current = np.zeros(0, np.float32)  # the paragraph being joined
    for i, take in enumerate(takes):
        current = crossfade(current, take.audio.astype(np.float32), fade)
        last = i == len(takes) - 1
        gap = 0.0 if last else gap_after(take)  # the tail follows the last take
        if gap or last:
            pieces += [current, np.zeros(round(gap * sample_rate), np.float32)]
            current = np.zeros(0, np.float32)
    pieces.append(np.zeros(round(TAIL_SECONDS * sample_rate), np.float32))
    samples = np.concatenate(pieces)
    peak = float(np.abs(samples).max(initial=0.0))
    if peak > PEAK_CEILING:
        samples *= PEAK_CEILING / peak
    return ChapterAudio(chapter=chapter, samples=samples, sample_rate=sample_rate)
