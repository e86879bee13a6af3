"""The frame logits processor and its own sampler, driven through vLLM's V1 processor interface."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

from renderer.codec import CODEBOOK_SIZE
from renderer.speech import kani
from renderer.speech.frames import (
    CANDIDATES,
    EXTRA_ARG,
    KaniFrameProcessor,
    gumbel_noise,
    sample_codes,
    sampling_args,
)

DRAWS = 40_000


def _draws(logits: list[float], top_p: float = 1.0, temperature: float = 1.0, seen: list[bool] | None = None):
    """Frequencies of DRAWS draws, one seed each, from one row of logits."""
    rows = torch.tensor([logits] * DRAWS, dtype=torch.float32)
    seen_rows = torch.tensor([seen or [False] * len(logits)] * DRAWS)
    full = torch.ones(DRAWS)
    choice = sample_codes(rows, seen_rows, torch.arange(DRAWS, dtype=torch.int64), torch.zeros(DRAWS, dtype=torch.int64),
                          full * temperature, full * top_p, full * 1.1)
    return np.bincount(choice.numpy(), minlength=len(logits)) / DRAWS


def test_sampler_draws_from_the_softmax():
    logits = [2.0, 1.0, 0.0, -1.0, float("-inf")]
    expected = torch.tensor(logits).softmax(0).numpy()
    np.testing.assert_allclose(_draws(logits), expected, atol=0.01)
    hot = (torch.tensor(logits) / 0.6).softmax(0).numpy()
    np.testing.assert_allclose(_draws(logits, temperature=0.6), hot, atol=0.01)


def test_sampler_top_p_drops_the_unlikely_tail():
    logits = [2.0, 1.0, 0.0, -1.0]
    p = torch.tensor(logits).softmax(0)  # 0.644, 0.237, 0.087, 0.032
    freq = _draws(logits, top_p=0.85)  # keeps the first two (0.644 + 0.237 >= 0.85)
    assert freq[2] == 0 and freq[3] == 0
    np.testing.assert_allclose(freq[:2], (p[:2] / p[:2].sum()).numpy(), atol=0.01)


def test_sampler_penalizes_what_was_generated():
    logits = [1.0, 1.0, -1.0, -1.0]
    freq = _draws(logits, seen=[True, False, True, False])
    penalized = torch.tensor([1 / 1.1, 1.0, -1.1, -1.0]).softmax(0).numpy()  # HF/vLLM: divide if > 0, else multiply
    np.testing.assert_allclose(freq, penalized, atol=0.01)


def test_noise_is_a_function_of_seed_position_and_column():
    seeds = torch.tensor([7, 7, 8], dtype=torch.int64)
    positions = torch.tensor([0, 1, 0], dtype=torch.int64)
    noise = gumbel_noise(seeds, positions, CANDIDATES)
    assert torch.equal(noise, gumbel_noise(seeds, positions, CANDIDATES))
    assert torch.equal(noise[1], gumbel_noise(seeds[1:2], positions[1:2], CANDIDATES)[0])  # other rows do not matter
    assert not torch.equal(noise[0], noise[1]) and not torch.equal(noise[0], noise[2])
    assert noise.isfinite().all() and abs(noise.mean().item() - 0.5772) < 0.05  # Gumbel's mean: Euler's constant


class Batch:
    """A stand-in for vLLM's persistent batch: rows of live output lists, as the model runner keeps them."""

    def __init__(self, rows: int = 4, device: str = "cpu"):
        config = SimpleNamespace(model_config=SimpleNamespace(get_vocab_size=lambda: kani.AUDIO_TOKEN_END),
                                 scheduler_config=SimpleNamespace(max_num_seqs=rows))
        self.device = torch.device(device)
        self.processor = KaniFrameProcessor(config, self.device, self.device.type == "cuda")  # pinned as vLLM does
        self.outputs: dict[int, list[int]] = {}

    def add(self, row: int, seed: int, mode="sample") -> None:
        value = True if mode == "mask" else sampling_args(seed, 0.6, 0.95, 1.1)
        self.outputs[row] = []
        params = SamplingParams(extra_args={EXTRA_ARG: value})
        self.processor.update_state(BatchUpdate(len(self.outputs), [], [(row, params, [1], self.outputs[row])], []))

    def step(self, keep=True) -> dict[int, int]:
        """One decoding step over every row: the tokens argmax takes, appended unless keep is False."""
        n = max(self.outputs) + 1
        # The same logits in every row, changing with the step: what differs between rows is their seed.
        generator = torch.Generator().manual_seed(len(self.outputs[0]))
        logits = torch.randn(1, kani.AUDIO_TOKEN_END, generator=generator).repeat(n, 1).to(self.device)
        picked = self.processor.apply(logits).argmax(-1).tolist()
        tokens = {row: picked[row] for row in self.outputs}
        if keep:
            for row, token in tokens.items():
                self.outputs[row].append(token)
        return tokens


def _check_frames(tokens: list[int]) -> None:
    for position, token in enumerate(tokens):
        if token == kani.END_OF_SPEECH:
            assert position % 4 == 0
            continue
        codebook = position % 4
        assert kani.audio_token(codebook, 0) <= token < kani.audio_token(codebook, CODEBOOK_SIZE)


def test_processor_samples_well_formed_frames_and_marks_what_was_generated():
    batch = Batch()
    batch.add(0, seed=11)
    batch.add(1, seed=12, mode="mask")
    batch.step(keep=False)  # a partial prefill: vLLM throws the sample away
    for _ in range(12):
        batch.step()
    for row in (0, 1):
        _check_frames(batch.outputs[row])
    seen = batch.processor.seen[0, :-1].nonzero().flatten().tolist()
    generated = sorted({t - kani.AUDIO_TOKEN_BASE for t in batch.outputs[0][:-1]})  # the last is not yet counted
    assert seen == generated


def swap(batch: Batch, a: int, b: int) -> None:
    """vLLM condenses its batch: rows a and b swap."""
    batch.processor.update_state(BatchUpdate(len(batch.outputs), [], [], [(a, b, MoveDirectionality.SWAP)]))
    batch.outputs[a], batch.outputs[b] = batch.outputs[b], batch.outputs[a]


def fill_the_hole(batch: Batch, finished: int, last: int) -> None:
    """Row `finished` ends, and vLLM moves row `last` into its place."""
    batch.processor.update_state(BatchUpdate(len(batch.outputs) - 1, [finished], [],
                                             [(last, finished, MoveDirectionality.UNIDIRECTIONAL)]))
    batch.outputs[finished] = batch.outputs.pop(last)


@pytest.mark.parametrize("move", [swap, fill_the_hole])
def test_processor_takes_follow_their_seed_across_rows_and_moves(move):
    alone = Batch()
    alone.add(0, seed=5)
    for _ in range(8):
        alone.step()

    crowded = Batch()
    crowded.add(0, seed=99)
    crowded.add(1, seed=5)
    for i in range(8):
        if i == 4:
            move(crowded, 0, 1)
        crowded.step()
    assert crowded.outputs[0] == alone.outputs[0]


@pytest.mark.gpu
def test_processor_never_waits_for_the_gpu():
    """A call that synchronizes the stream stalls the engine core at every step: any raises here."""
    assert torch.cuda.is_available()
    batch = Batch(rows=8, device="cuda")
    processor = batch.processor

    def strictly(method):
        def call(*args):
            torch.cuda.set_sync_debug_mode("error")
            try:
                return method(*args)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return call

    processor.apply, processor.update_state = strictly(processor.apply), strictly(processor.update_state)
    for row in range(6):
        batch.add(row, seed=row, mode="mask" if row == 5 else "sample")
    batch.step(keep=False)
    for i in range(12):
        if i == 4:
            swap(batch, 0, 1)
        if i == 8:
            fill_the_hole(batch, 2, 5)
        batch.step()
    for tokens in batch.outputs.values():
        _check_frames(tokens)


def test_processor_rejects_bad_settings():
    with pytest.raises(ValueError):
        KaniFrameProcessor.validate_params(SamplingParams(extra_args={EXTRA_ARG: "yes"}))
    with pytest.raises(ValueError):
        KaniFrameProcessor.validate_params(SamplingParams(extra_args={EXTRA_ARG: {"seed": 1}}))
    KaniFrameProcessor.validate_params(SamplingParams(extra_args={EXTRA_ARG: sampling_args(1, 0.6, 0.95, 1.1)}))
