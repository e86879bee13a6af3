"""The NeMo nano codec (real NeMo code, tiny random weights): batched decode, padding, lengths."""
from __future__ import annotations

import numpy as np
import pytest

from renderer.codec import SAMPLES_PER_FRAME, CodecError, batches_by_frames, load_codec


@pytest.fixture(scope="module")
def codec(tiny_models):
    return load_codec(str(tiny_models[1]), device="cpu")


def test_decode_lengths_follow_frames(codec):
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 4032, size=(4, n)) for n in (3, 20, 0, 11)]
    audio = codec.decode(codes)
    assert [len(a) for a in audio] == [n * SAMPLES_PER_FRAME for n in (3, 20, 0, 11)]
    assert all(a.dtype == np.float32 for a in audio)
    assert all(np.abs(a).max(initial=0) <= 1.0 for a in audio)


def test_padding_in_a_batch_does_not_change_a_take(codec):
    rng = np.random.default_rng(1)
    short, long = rng.integers(0, 4032, size=(4, 8)), rng.integers(0, 4032, size=(4, 30))
    alone = codec.decode([short])[0]
    batched = codec.decode([short, long])[0]
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_missing_codec_file_is_one_clear_line(tmp_path):
    with pytest.raises(CodecError, match="no such codec file"):
        load_codec(str(tmp_path / "missing.nemo"))


def test_unreachable_hub_codec_is_one_clear_line():
    with pytest.raises(CodecError) as err:
        load_codec("nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps", device="cpu")
    assert "\n" not in str(err.value)


def test_batches_respect_the_frame_budget():
    assert batches_by_frames([10, 10, 10], budget=20) == [[0, 1], [2]]
    assert batches_by_frames([5, 30, 5], budget=20) == [[0], [1], [2]]
    assert batches_by_frames([], budget=20) == []
