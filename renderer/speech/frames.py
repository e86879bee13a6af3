"""A vLLM logits processor that keeps KaniTTS answers well-formed, and samples them.

The prompt ends in START_OF_AI, START_OF_SPEECH, so the i-th generated token is the (i mod 4)-th code
of a frame: only that codebook's 4,032 tokens are allowed there, and END_OF_SPEECH only where a frame
is complete.

Two modes, chosen per request by SamplingParams.extra_args["kani_frames"]:
- True: mask only. Every disallowed logit becomes -inf and vLLM's sampler does the rest, over the
  whole 80,538-token vocabulary (top-p sorts all of it: the costliest part of a step at large batch).
- a dict of sampling settings (`sampling_args`): the processor samples itself, over the 4,033
  candidates of the row's frame position only, and leaves one finite logit for vLLM's greedy
  argmax to pick (the request runs at temperature 0). Same distribution as vLLM's own sampling
  with those settings (repetition penalty over the codes already generated, temperature, top-p),
  drawn with Gumbel noise from a counter-based hash of (seed, position, code): a take depends on
  its seed alone, not on which rows shared its batch.

Nothing here waits for the GPU: lists go to the device from pinned memory without blocking, Python
values are written by index_fill_ and scatter_ (`tensor[index] = 0.0` copies the value to the GPU
first), and rows move by plain indexing. A copy from pageable memory synchronizes the stream, so the
engine core would wait for the step's forward pass and async scheduling's overlap would be lost (a
profile of the 10-hour book had 39% of the engine cores' time on such copies: bench/README.md,
"Seventh session").

Implements vLLM's V1 interface (0.24 to 0.32). Model Runner V2 (the GPU default from 0.31) takes
another interface: the engine sets VLLM_USE_V2_MODEL_RUNNER=0.
"""
from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from renderer.codec import CODEBOOK_SIZE
from renderer.speech.kani import AUDIO_TOKEN_BASE, END_OF_SPEECH, TOKENS_PER_FRAME

EXTRA_ARG = "kani_frames"  # SamplingParams.extra_args key that switches the processor on
CANDIDATES = CODEBOOK_SIZE + 1  # a frame position's codes, then END_OF_SPEECH
AUDIO_SPAN = TOKENS_PER_FRAME * CODEBOOK_SIZE  # 16,128 audio tokens, one "seen" flag each
NO_CODE = AUDIO_SPAN  # the "seen" column that stands for nothing (END_OF_SPEECH, no token yet)
MASK32 = 0xFFFFFFFF
MIN_TEMPERATURE = 1e-4  # temperature 0 means greedy: the noise then never outweighs a logit gap
UNIFORM_BITS = 24  # float32's mantissa: uniforms are (k + 0.5) / 2**24


def frame_masks(vocab_size: int) -> torch.Tensor:
    """(4, vocab) bool: True where a token is NOT allowed at that position in a frame."""
    banned = torch.ones((TOKENS_PER_FRAME, vocab_size), dtype=torch.bool)
    for k in range(TOKENS_PER_FRAME):
        start = AUDIO_TOKEN_BASE + k * CODEBOOK_SIZE
        banned[k, start : start + CODEBOOK_SIZE] = False
    banned[0, END_OF_SPEECH] = False  # a frame boundary: the answer may end here
    return banned


def sampling_args(seed: int, temperature: float, top_p: float, repetition_penalty: float) -> dict:
    """extra_args["kani_frames"] for a request the processor samples itself."""
    return {"seed": seed, "temperature": temperature, "top_p": top_p, "repetition_penalty": repetition_penalty}


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """murmur3's 32-bit finalizer on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & MASK32  # int64 products wrap; the low 32 bits are still exact
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & MASK32
    return x ^ (x >> 16)


def gumbel_noise(seeds: torch.Tensor, positions: torch.Tensor, width: int) -> torch.Tensor:
    """(rows, width) float32 Gumbel(0, 1) noise, a pure function of (seed, position, column).

    seeds, positions: (rows,) int64.
    """
    column = torch.arange(width, device=seeds.device, dtype=torch.int64)
    x = (seeds[:, None] * 0x9E3779B1 + positions[:, None] * 0x7FEB352D + column[None, :]) & MASK32
    x = _mix32(_mix32(x) ^ seeds[:, None])
    uniform = ((x >> (32 - UNIFORM_BITS)).to(torch.float32) + 0.5) / (1 << UNIFORM_BITS)
    return -torch.log(-torch.log(uniform))


def sample_codes(candidates: torch.Tensor, seen: torch.Tensor, seeds: torch.Tensor, positions: torch.Tensor,
                 temperature: torch.Tensor, top_p: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """One draw per row from the candidates' distribution under the model card's sampling.

    candidates: (rows, 4033) float32 logits of the row's codebook's codes then END_OF_SPEECH (-inf
    where not allowed); seen: (rows, 4033) bool, candidates already generated (repetition penalty);
    seeds, positions: (rows,) int64; temperature, top_p, penalty: (rows,) float32.
    Returns (rows,) int64 candidate indices.
    """
    logits = torch.where(seen, torch.where(candidates > 0, candidates / penalty[:, None], candidates * penalty[:, None]),
                         candidates)
    logits = logits / temperature.clamp_min(MIN_TEMPERATURE)[:, None]
    # top-p as vLLM does it: drop the least likely tokens whose total probability is below 1 - p
    ascending, order = logits.sort(dim=-1)
    cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= (1 - top_p)[:, None]
    drop[:, -1] = False  # the most likely token always stays
    logits = logits.scatter(1, order, ascending.masked_fill(drop, float("-inf")))
    return (logits + gumbel_noise(seeds, positions, logits.shape[1])).argmax(dim=-1)


class KaniFrameProcessor(LogitsProcessor):
    """Masks, or samples, every row whose request set extra_args["kani_frames"]."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool):
        vocab = vllm_config.model_config.get_vocab_size()
        rows = vllm_config.scheduler_config.max_num_seqs
        self.device = device
        self.pin_memory = is_pin_memory
        self.banned = frame_masks(vocab).to(device)
        self.outputs: dict[int, list[int]] = {}  # batch row -> its live output token list
        self.sampled: set[int] = set()  # rows the processor samples (the others are only masked)
        self.code_column = torch.arange(CODEBOOK_SIZE, device=device)
        # Per batch row, for the sampled rows: settings, which codes it generated, and the token this
        # processor picked last (counted as generated once the row's output has grown past it).
        self.settings = torch.zeros((rows, 4), dtype=torch.float32, device=device)  # temperature, top_p, penalty, _
        self.seeds = torch.zeros(rows, dtype=torch.int64, device=device)
        self.seen = torch.zeros((rows, AUDIO_SPAN + 1), dtype=torch.bool, device=device)
        self.picked = torch.full((rows,), NO_CODE, dtype=torch.int64, device=device)
        self.picked_at = torch.full((rows,), -1, dtype=torch.int64, device=device)
        self.zero = torch.zeros((), dtype=torch.float32, device=device)

    @classmethod
    def validate_params(cls, params) -> None:
        value = (params.extra_args or {}).get(EXTRA_ARG)
        if isinstance(value, dict):
            if set(value) != set(sampling_args(0, 1, 1, 1)):
                raise ValueError(f"{EXTRA_ARG} takes exactly {sorted(sampling_args(0, 1, 1, 1))}")
        elif value not in (None, True, False):
            raise ValueError(f"{EXTRA_ARG} must be a bool or a dict of sampling settings")

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token is the most likely

    def _on_device(self, values: list, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """A (nested) list as a tensor on the device, copied without waiting for the GPU."""
        return torch.tensor(values, dtype=dtype, pin_memory=self.pin_memory).to(self.device, non_blocking=True)

    def _state(self) -> tuple[torch.Tensor, ...]:
        return self.settings, self.seeds, self.seen, self.picked, self.picked_at

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        # vLLM's documented order: removed, then added, then moved.
        for index in batch_update.removed:
            self.outputs.pop(index, None)
            self.sampled.discard(index)
        added = []
        for index, params, _prompt, output in batch_update.added:
            value = (params.extra_args or {}).get(EXTRA_ARG) if params is not None else None
            self.sampled.discard(index)
            if not value:
                self.outputs.pop(index, None)
                continue
            self.outputs[index] = output
            if isinstance(value, dict):
                self.sampled.add(index)
                added.append((index, value))
        if added:
            rows = self._on_device([index for index, _ in added])
            self.settings[rows] = self._on_device([[v["temperature"], v["top_p"], v["repetition_penalty"], 0.0]
                                                   for _, v in added], torch.float32)
            self.seeds[rows] = self._on_device([v["seed"] for _, v in added])
            # index_fill_, not `tensor[rows] = value`: torch copies a Python value to the GPU, waiting
            self.seen.index_fill_(0, rows, False)
            self.picked.index_fill_(0, rows, NO_CODE)
            self.picked_at.index_fill_(0, rows, -1)
        for a, b, direction in batch_update.moved:
            swap = direction == MoveDirectionality.SWAP
            row_a, row_b = self.outputs.pop(a, None), self.outputs.pop(b, None)
            if row_a is not None:
                self.outputs[b] = row_a
            if swap and row_b is not None:
                self.outputs[a] = row_b
            in_a, in_b = a in self.sampled, b in self.sampled
            self.sampled -= {a, b}
            self.sampled |= ({b} if in_a else set()) | ({a} if swap and in_b else set())
            for tensor in self._state():
                held = tensor[b].clone() if swap else None
                tensor[b] = tensor[a]
                if swap:
                    tensor[a] = held

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.outputs:
            return logits
        masked = [index for index in self.outputs if index not in self.sampled]
        if masked:
            self._mask(logits, masked)
        if self.sampled:
            self._sample(logits, sorted(self.sampled))
        return logits

    def _mask(self, logits: torch.Tensor, rows: list[int]) -> None:
        index, phase = self._on_device([rows, [len(self.outputs[i]) % TOKENS_PER_FRAME for i in rows]])
        if len(rows) == logits.shape[0]:  # every row is masked: one masked_fill_ in place
            order = torch.empty_like(phase)
            order[index] = phase
            logits.masked_fill_(self.banned[order], float("-inf"))
            return
        logits[index] = logits[index].masked_fill_(self.banned[phase], float("-inf"))

    def _sample(self, logits: torch.Tensor, rows: list[int]) -> None:
        index, positions = self._on_device([rows, [len(self.outputs[i]) for i in rows]])
        # The token picked last time counts as generated only if the output has grown past it (a
        # partial prefill's sample is thrown away by vLLM, and the row samples that position again).
        grown = positions > self.picked_at[index]
        self.seen[index, self.picked[index]] |= grown
        phase = positions % TOKENS_PER_FRAME
        first = phase * CODEBOOK_SIZE  # the row's codebook, as an offset into the audio tokens
        columns = first[:, None] + self.code_column[None, :]
        candidates = torch.cat([logits[index[:, None], AUDIO_TOKEN_BASE + columns],
                                logits[index, END_OF_SPEECH].masked_fill(phase != 0, float("-inf"))[:, None]], dim=1)
        seen = torch.cat([self.seen[index[:, None], columns], torch.zeros_like(phase, dtype=torch.bool)[:, None]], dim=1)
        settings = self.settings[index]
        choice = sample_codes(candidates, seen, self.seeds[index], positions, settings[:, 0], settings[:, 1],
                              settings[:, 2])
        is_end = choice == CODEBOOK_SIZE
        self.picked[index] = torch.where(is_end, NO_CODE, first + choice)
        self.picked_at[index] = positions
        token = torch.where(is_end, END_OF_SPEECH, AUDIO_TOKEN_BASE + first + choice)
        if len(rows) == logits.shape[0]:  # every row is sampled: rows is 0..n-1
            logits.fill_(float("-inf")).scatter_(1, token[:, None], 0.0)
        else:
            logits.index_fill_(0, index, float("-inf")).index_put_((index, token), self.zero)
