"""Assembly (crossfades, pauses, no clipping) and the take store, on synthetic signals."""
from __future__ import annotations

import numpy as np

from renderer.audio.assemble import (
    HEAD_SECONDS,
    PARAGRAPH_PAUSE_SECONDS,
    PEAK_CEILING,
    TAIL_SECONDS,
    assemble_chapter,
    crossfade,
)
from renderer.book import Chapter, Chunk, Paragraph, Take, Voice
from renderer.store import TakeStore, take_key

RATE = 1000
VOICE = Voice("en", "andrew", "m", "c")


def take(index, paragraph, last, audio, is_title=False):
    chunk = Chunk(1, paragraph, index, f"text {index}", VOICE, seconds=1.0, is_title=is_title,
                  last_in_paragraph=last)
    return Take(chunk=chunk, codes=np.zeros((4, 0), np.int64), finished=True, audio=audio)


def test_equal_power_crossfade_overlaps_and_keeps_power():
    a, b = np.ones(100, np.float32), np.ones(100, np.float32)
    joined = crossfade(a, b, 20)
    assert len(joined) == 180
    middle = joined[80:100]
    assert middle.max() <= np.sqrt(2) + 1e-6 and middle.min() >= 1.0 - 1e-6  # cos + sin of a constant


def test_chapter_lengths_add_up():
    chapter = Chapter(1, "One", (Paragraph("a"), Paragraph("b")))
    takes = [take(0, 0, False, np.full(200, 0.1, np.float32)), take(1, 0, True, np.full(300, 0.1, np.float32)),
             take(2, 1, True, np.full(100, 0.1, np.float32))]
    audio = assemble_chapter(chapter, takes[::-1], RATE)  # any order in, chunk order out
    fade = 40  # CROSSFADE_SECONDS at 1,000 Hz
    expected = (HEAD_SECONDS + TAIL_SECONDS + PARAGRAPH_PAUSE_SECONDS) * RATE + 600 - fade
    assert len(audio.samples) == round(expected)


def test_loud_chapter_is_scaled_not_clipped():
    chapter = Chapter(1, "One", (Paragraph("a"),))
    loud = np.sin(np.linspace(0, 20, 500)).astype(np.float32) * 3
    audio = assemble_chapter(chapter, [take(0, 0, True, loud)], RATE)
    assert abs(np.abs(audio.samples).max() - PEAK_CEILING) < 1e-6


def test_store_round_trip_and_damage(tmp_path):
    store = TakeStore(tmp_path)
    t = take(0, 0, True, None)
    t.codes = np.array([[1, 2], [3, 4], [5, 6], [4031, 0]], np.int64)
    key = take_key(t.chunk, {"seed": 0})
    assert take_key(t.chunk, {"seed": 1}) != key
    store.save(t, key)
    loaded = store.load(t.chunk, key)
    np.testing.assert_array_equal(loaded.codes, t.codes)
    assert loaded.finished
    store.path(key).write_bytes(store.path(key).read_bytes()[:40])  # truncated, as by a crash
    assert store.load(t.chunk, key) is None
    assert not store.path(key).exists()
