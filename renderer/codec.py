"""The NeMo nano codec (nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps): codes in, audio out.

Each frame of 4 codes (one per FSQ group of levels [9, 8, 8, 7]) decodes to 1,764 samples at
22,050 Hz. `nemo` and `torch` are imported only when a codec is loaded.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from renderer.book import RendererError, first_line

SAMPLE_RATE = 22050  # Hz
FSQ_LEVELS = (9, 8, 8, 7)  # levels of each of the 4 groups' scalar quantizers
NUM_CODEBOOKS = 4  # one codebook a group; a frame is 4 codes
CODEBOOK_SIZE = math.prod(FSQ_LEVELS)  # 4,032 codes a codebook
UPSAMPLE_RATES = (7, 7, 6, 3, 2)  # the decoder's up-sampling stages
SAMPLES_PER_FRAME = math.prod(UPSAMPLE_RATES)  # 1,764 samples a frame
FRAMES_PER_SECOND = SAMPLE_RATE / SAMPLES_PER_FRAME  # 12.5 frames a second
DEFAULT_CODEC = "nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps"
DECODE_BATCH_FRAMES = 150 * 16  # frames in one decode batch: 16 twelve-second chunks, about 4 GiB at fp32
PAD_FRAMES = 25  # a batch's length is padded to a multiple of this (2 s): fewer shapes for cuDNN to tune


class CodecError(RendererError):
    """The codec could not be loaded: one line for the user."""


def load_codec(source: str, device: str = "auto", precision: str = "auto", tune_convs: bool = True):
    """Load the codec from a local `.nemo` file (restore_from) or a hub id (from_pretrained).

    precision: the decoder's weights and activations, "bf16" or "fp32" ("auto": bf16 on a GPU, fp32
    on the CPU). tune_convs: on a GPU, let cuDNN time its convolution algorithms for each new shape
    (batches are padded to PAD_FRAMES steps, so shapes repeat). (torch.compile, of the whole decoder
    or of its activations, gave nothing: bench/README.md.) Returns a `Codec`. Raises CodecError with
    one line when it cannot be loaded.
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") else "fp32"
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = tune_convs
    local = Path(source).expanduser()
    looks_local = local.exists() or source.startswith((".", "/", "~")) or source.endswith(".nemo")
    if looks_local and not local.is_file():
        raise CodecError(f"{source}: no such codec file (expected a .nemo file or a hub id)")
    try:
        from nemo.collections.tts.models import AudioCodecModel
    except ImportError as err:
        raise CodecError(f"NeMo is not installed ({err}); install the project's extras") from err
    try:
        if looks_local:
            model = AudioCodecModel.restore_from(str(local), map_location=torch.device(device))
        else:
            model = AudioCodecModel.from_pretrained(source, map_location=torch.device(device))
    except Exception as err:  # NeMo raises many kinds; the user needs one line
        hint = " (offline: pass a local .nemo file)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise CodecError(f"{source}: the codec could not be loaded{hint}: {first_line(err)}") from err
    model = model.eval()
    if precision == "bf16":
        model = model.to(torch.bfloat16)  # NeMo's decode casts the dequantized codes to the model's dtype
    return Codec(model, device)


class Codec:
    """A loaded codec. `decode` turns codes into float32 audio at SAMPLE_RATE."""

    def __init__(self, model, device: str):
        self.model = model
        self.device = device
        if model.sample_rate != SAMPLE_RATE or model.samples_per_frame != SAMPLES_PER_FRAME:
            raise CodecError(
                f"codec runs at {model.sample_rate} Hz, {model.samples_per_frame} samples a frame; "
                f"KaniTTS needs {SAMPLE_RATE} Hz, {SAMPLES_PER_FRAME}"
            )

    def decode(self, codes: list[np.ndarray]) -> list[np.ndarray]:
        """Decode a batch of takes at once.

        codes: each (4, frames) int64 in 0..4031, frames may differ. Returns, in order, float32
        mono audio of frames * 1,764 samples each. Shorter takes are padded to the longest and
        trimmed back with the lengths the codec returns.
        """
        import torch

        out: list[np.ndarray | None] = [None] * len(codes)
        empty = [i for i, c in enumerate(codes) if c.shape[1] == 0]
        for i in empty:
            out[i] = np.zeros(0, dtype=np.float32)
        todo = [i for i in range(len(codes)) if out[i] is None]
        if not todo:
            return out
        longest = -(-max(codes[i].shape[1] for i in todo) // PAD_FRAMES) * PAD_FRAMES  # causal: padding at the end is inert
        tokens = torch.zeros((len(todo), NUM_CODEBOOKS, longest), dtype=torch.long)
        lengths = torch.zeros(len(todo), dtype=torch.long)
        for row, i in enumerate(todo):
            tokens[row, :, : codes[i].shape[1]] = torch.from_numpy(codes[i])
            lengths[row] = codes[i].shape[1]
        try:
            with torch.inference_mode():
                audio, audio_len = self.model.decode(tokens=tokens.to(self.device), tokens_len=lengths.to(self.device))
        except torch.OutOfMemoryError as err:
            raise CodecError("out of GPU memory while decoding: lower --gpu-memory (the speech engine's "
                             "share) to leave the codec more; finished chunks are kept") from err
        audio = audio.float().cpu().numpy()
        for row, i in enumerate(todo):
            out[i] = audio[row, : int(audio_len[row])].copy()
        return out


def batches_by_frames(lengths: Iterable[int], budget: int = DECODE_BATCH_FRAMES) -> list[list[int]]:
    """Group item indices, in the given order, into batches whose padded size
    (items x longest) stays within `budget` frames."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i, n in enumerate(lengths):
        if current and max(longest, n) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(current)
    return batches
