"""A vLLM logits processor that keeps KaniTTS answers well-formed.

The prompt ends in START_OF_AI, START_OF_SPEECH, so the i-th generated token is the
(i mod 4)-th code of a frame: only that codebook's 4,032 tokens are allowed there, and
END_OF_SPEECH only where a frame is complete. One precomputed (4, vocab) mask and a single
masked_fill_ a step (a gather/scatter version cost 4x more on the CPU).

Implements vLLM's V1 interface (0.24 to 0.32). Model Runner V2 (the GPU default from 0.31) takes
another interface: the engine sets VLLM_USE_V2_MODEL_RUNNER=0.
"""
from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from renderer.codec import CODEBOOK_SIZE
from renderer.speech.kani import (
    AUDIO_TOKEN_BASE,
    END_OF_SPEECH,
    TOKENS_PER_FRAME,
)

EXTRA_ARG = "kani_frames"  # SamplingParams.extra_args key that switches the processor on


def frame_masks(vocab_size: int) -> torch.Tensor:
    """(4, vocab) bool: True where a token is NOT allowed at that position in a frame."""
    banned = torch.ones((TOKENS_PER_FRAME, vocab_size), dtype=torch.bool)
    for k in range(TOKENS_PER_FRAME):
        start = AUDIO_TOKEN_BASE + k * CODEBOOK_SIZE
        banned[k, start : start + CODEBOOK_SIZE] = False
    banned[0, END_OF_SPEECH] = False  # a frame boundary: the answer may end here
    return banned


class KaniFrameProcessor(LogitsProcessor):
    """Masks every row whose request set extra_args={"kani_frames": True}."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        vocab = vllm_config.model_config.get_vocab_size()
        self.banned = frame_masks(vocab).to(device)
        self.outputs: dict[int, list[int]] = {}  # batch row -> its live output token list

    @classmethod
    def validate_params(cls, params) -> None:
        value = (params.extra_args or {}).get(EXTRA_ARG)
        if value not in (None, True, False):
            raise ValueError(f"{EXTRA_ARG} must be a bool")

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token is the most likely

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        # vLLM's documented order: removed, then added, then moved.
        for index in batch_update.removed:
            self.outputs.pop(index, None)
        for index, params, _prompt, output in batch_update.added:
            if params is not None and (params.extra_args or {}).get(EXTRA_ARG):
                self.outputs[index] = output
            else:
                self.outputs.pop(index, None)
        for a, b, direction in batch_update.moved:
            row_a, row_b = self.outputs.pop(a, None), self.outputs.pop(b, None)
            if row_a is not None:
                self.outputs[b] = row_a
            if direction == MoveDirectionality.SWAP and row_b is not None:
                self.outputs[a] = row_b

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.outputs:
            return logits
        rows = torch.tensor(list(self.outputs), device=logits.device)
        phase = torch.tensor([len(out) % TOKENS_PER_FRAME for out in self.outputs.values()], device=logits.device)
        if len(self.outputs) == logits.shape[0]:  # every row is ours: one masked_fill_ in place
            order = torch.empty_like(phase)
            order[rows] = phase
            return logits.masked_fill_(self.banned[order], float("-inf"))
        logits[rows] = logits[rows].masked_fill_(self.banned[phase], float("-inf"))
        return logits
