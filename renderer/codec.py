"""The NeMo nano codec (nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps): codes in, audio out.

Each frame of 4 codes (one per FSQ group of levels [9, 8, 8, 7]) decodes to 1,764 samples at
22,050 Hz. `nemo` and `torch` are imported only when a codec is loaded.
"""
from __future__ import annotations

import math
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
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
DECODE_BATCH_FRAMES = 150 * 24  # padded frames in one decode batch: 24 twelve-second chunks, about 6 GiB at fp32
# The decoder's layers channels-last (`_plain_decoder`): True, False, or None for "when compiled, on a
# GPU". On an H200, bf16, batches of 16 and 64 twelve-second takes: compiled, channels-last 1,504x and
# 1,533x against 1,058x and 1,048x; eager, channels-last 997x and 959x against 1,023x and 1,029x
# (bench/README.md, "Sixth session").
CHANNELS_LAST: bool | None = None
PAD_FRAMES = 5  # a batch's length is padded to a multiple of this (0.4 s): fewer shapes to compile or tune for
# One more decode batch's own cost, in frames' work. Measured on an H200 (bf16, eager; bench/README.md, "Ninth
# session"): a batch costs about 25 ms plus 0.069 ms a padded frame, so 1 x 150 frames ran at 319x real time and
# 16 x 150 at 1,008x. The 25 ms is 360 frames' work, and the GPU's own: graphed, a batch of 8 took what it took
# eagerly ("Tenth session"). Taken as 25 frames before, the batches of like length came out so small that the
# book's mix decoded at 713x against 728x as they came; at 360, 924x against 739x, and the render 484x against 451x.
BATCH_COST_FRAMES = 360
# The residual units `fused` runs as Triton kernels: those of at most this many channels (the 54- and 27-channel
# stages, which write most of the decoder's bytes). On an H200 (bench/snake_conv_bench.py, twelfth session), activated
# apart, the kernel ran 2.40x as fast as cuDNN's unit at 27 channels, 1.79x at 54, and 1.04x at 108, where the
# activation kernel then cuDNN ran 1.53x: wider units take that way.
FUSED_MOST_CHANNELS = 64
# The same where the convolution kernel moves its tiles by descriptors (`DecoderPlan.tma`): the 108-channel stage too,
# whose units so ran 1.69x as fast as the activation kernel and cuDNN (bench/snake_conv_bench.py, fourteenth session)
TMA_MOST_CHANNELS = 128


class CodecError(RendererError):
    """The codec could not be loaded: one line for the user."""


@dataclass(frozen=True)
class DecoderPlan:
    """How `_plain_decoder` runs its layers, beyond channels_last. The default is the fastest measured (bench/README.md,
    "Twelfth" to "Fourteenth session"): on an H200, bf16, 64 twelve-second takes a batch decoded at 3,534x against
    1,013x with none of them (`EAGER`) and 2,141x without descriptors (tma) and chained; the 10-hour book rendered at
    538x and 603x with descriptors (chained, and not), its speed the engines'. The Triton kernels
    (renderer/codec_kernels.py) run only on a GPU, in a decoder neither compiled nor wholly channels-last; `Codec`
    turns them off elsewhere, descriptors off on a GPU without them (before Hopper) and in float32 (not measured so),
    and either where they fail to compile."""

    # the first convolution and this many up-sampling stages channels-last (their layers wide, their samples
    # few), the rest as 1-D convolutions on plain tensors. Off: one stage so ran its 64-row batches faster (1,776x
    # against 1,701x), but at 18 to 26 rows of 120-150 frames cuDNN took a direct kernel for its convolutions (48 ms
    # a call), and the book's mix decoded at 1,050x against 1,466x (bench/mix_profile.py, each batch alone).
    wide_stages: int = 0
    # each residual unit of at most fused_channels channels as two Triton kernels (`codec_kernels.snake_conv`:
    # activation, convolution, bias and residual in one), its activations in float32 where torch's round each
    # op to the decoder's dtype; fused_apart: their activations as kernels of their own, not at each tap
    fused: bool = True
    fused_channels: int = FUSED_MOST_CHANNELS
    fused_apart: bool = True
    # every other activation (in the plain layout) as one Triton kernel (`codec_kernels.activate`) instead of
    # torch's five to seven, which also writes the next convolution's left padding, so that F.pad's copy goes too
    kernel_activations: bool = True
    # each up-sampling stage's activation and grouped transposed convolution as one Triton kernel
    # (`codec_kernels.upsample`), in the plain layout: cuDNN's took 16% of the decoder's time on the book's mix
    # (twelfth session); with it and `folded`, 64 x 150 frames decoded at 2,181x against 1,643x (thirteenth)
    kernel_upsampling: bool = True
    # in the plain layout, each cuDNN convolution made without its bias, which the kernel after it adds (the
    # activation, or the residual add, one pass instead of torch's two); and a stage's mean of its chains summed
    # by each chain's last kernel as it writes, not by three passes after: 1,738x against 1,683x (thirteenth session)
    folded: bool = True
    # each fused unit's inner activation applied by its first convolution kernel before it writes (the kernel's
    # epilogue), not by a kernel of its own: one pass over the unit's middle fewer. 64 x 150 frames at 2,231x and
    # 2,275x against 2,104x and 2,141x; with tma, 3,097x and 3,185x against 2,932x and 2,988x (fourteenth session)
    chained: bool = True
    # the fused units' convolution kernel moving its tiles by the GPU's tensor memory accelerator (Hopper on), from
    # the activation written channels-last, not by pointers, whose loads at a tap's shift Triton makes a sample at a
    # time (`codec_kernels.snake_conv`'s tma): the kernel 2.0x (27 channels) to 2.9x (108) as fast, and the units of
    # at most tma_channels channels fused, the 108-channel stage's too: 64 x 150 frames at 3,534x (fourteenth session)
    tma: bool = True
    tma_channels: int = TMA_MOST_CHANNELS

    @property
    def kernels(self) -> bool:
        """Whether any part runs as a Triton kernel."""
        return self.fused or self.kernel_activations or self.kernel_upsampling

    def torch_only(self) -> DecoderPlan:
        """This plan without its Triton kernels."""
        return replace(self, fused=False, kernel_activations=False, kernel_upsampling=False)


# NeMo's arithmetic in torch's own kernels: what the Triton kernels are tested and measured against.
EAGER = DecoderPlan(fused=False, fused_apart=False, kernel_activations=False, kernel_upsampling=False, folded=False)


def _plain_decoder(nemo_decoder, channels_last: bool = False, plan: DecoderPlan = EAGER):
    """NeMo's CausalHiFiGANDecoder as a plain torch module with the same weights (weight norm
    folded in) and the same arithmetic, without NeMo's type checks and length masks, so that
    torch.compile can trace it whole. Every layer is causal, so what the masks zero (samples past a
    take's length) never reaches a sample inside it: trimming the output to the lengths is enough.
    (batch, 16, frames) in, (batch, frames * 1,764) out, in the decoder's dtype.

    channels_last: run every layer as a 2-D convolution over (batch, channels, 1, samples) held
    channels-last, cuDNN's native layout on a GPU, so that no convolution copies its input and output
    between layouts; a causal convolution is then padded on both sides and its right overhang
    dropped (F.pad first, compiled, was no faster: bench/README.md, "Seventh session"). Same weights;
    the arithmetic differs only in the kernels' order of summation. plan: the rest (`DecoderPlan`)."""
    import torch
    import torch.nn.functional as F
    from nemo.collections.common.parts.utils import ClampActivation, HalfSnake, Snake

    fused, kernel_activations = plan.fused, plan.kernel_activations
    if plan.kernels:
        from renderer.codec_kernels import activate, add_residual, padded_taps, snake_conv, upsample

    building = {"wide": channels_last}  # whether the layers being built run channels-last

    def frozen(tensor):
        """A weight as a constant; channels-last, a 1-D layer's weight (or alpha) made 2-D, channels-last."""
        if tensor is None:
            return None
        tensor = tensor.detach().clone()
        if building["wide"] and tensor.dim() == 3:
            tensor = tensor.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return torch.nn.Parameter(tensor, requires_grad=False)

    def unsupported(what) -> CodecError:
        return CodecError(f"codec decoder: {what} is not supported (only the nano codec's causal HiFi-GAN)")

    class Activation(torch.nn.Module):
        """Snake (x + sin(alpha x)^2 / alpha) on the first `snake` channels, leaky ReLU on the rest."""

        def __init__(self, nemo):
            super().__init__()
            inner = nemo.activation
            snake = inner.snake_act if isinstance(inner, HalfSnake) else inner if isinstance(inner, Snake) else None
            relu = inner.lrelu if isinstance(inner, HalfSnake) else inner
            if snake is None and not isinstance(inner, torch.nn.LeakyReLU):
                raise unsupported(f"activation {type(inner).__name__}")
            self.snake = snake.alpha.shape[1] if snake is not None else 0
            self.alpha = frozen(snake.alpha) if snake is not None else None
            # NeMo's 1 / (alpha + eps), once: two kernel launches fewer a Snake, the same values
            self.inverse = frozen((snake.alpha + 1e-9).reciprocal()) if snake is not None else None
            self.whole = isinstance(inner, Snake)
            self.slope = getattr(relu, "negative_slope", 0.0)

        def flat(self):
            """alpha and its inverse as the kernels take them: (channels,), or None for leaky ReLU alone."""
            return (None, None) if self.alpha is None else (self.alpha.view(-1), self.inverse.view(-1))

        def then(self, conv, x, residual=None, **more):
            """conv(self(x)) (+ residual), as one kernel (`fused` only); more: snake_conv's scale, into, activated
            and next_act."""
            alpha, inverse = self.flat()
            return snake_conv(x, alpha, inverse, self.snake, self.slope, conv.taps, conv.bias, conv.dilation, residual,
                              apart=plan.fused_apart, tma=plan.tma, **more)

        def padded(self, x, pad: int, bias=None):
            """self(x (+ bias)) after `pad` zeros, as one kernel (`kernel_activations`, the plain layout, only)."""
            alpha, inverse = self.flat()
            return activate(x, alpha, inverse, self.snake, self.slope, pad, bias)

        def forward(self, x):
            if kernel_activations and x.dim() == 3:
                return self.padded(x, 0)
            if self.alpha is None:
                return F.leaky_relu(x, self.slope)
            head = x[:, : self.snake]
            head = head + self.inverse * torch.sin(self.alpha * head).pow(2)
            return head if self.whole else torch.cat([head, F.leaky_relu(x[:, self.snake :], self.slope)], dim=1)

    class Conv(torch.nn.Module):
        """A causal convolution: left-padded by its reach, stride 1."""

        def __init__(self, nemo):
            super().__init__()
            conv = nemo.conv
            if conv.stride[0] != 1 or nemo.extra_pad_mode != "constant":
                raise unsupported(f"a convolution of stride {conv.stride[0]}, padded {nemo.extra_pad_mode!r}")
            self.weight, self.bias = frozen(conv.weight), frozen(conv.bias)
            self.dilation = conv.dilation[0]
            self.reach = (conv.kernel_size[0] - 1) * self.dilation
            self.wide = building["wide"]
            if fused and not self.wide:  # the weight as the kernel reads it: (taps, out, in), in whole channel blocks
                taps = padded_taps(self.weight.detach().permute(2, 0, 1))
                self.taps = torch.nn.Parameter(taps, requires_grad=False)

        def of(self, act, x):
            """self(act(x)); with kernel_activations, the activation and this convolution's padding one kernel."""
            if kernel_activations and not self.wide:
                return F.conv1d(act.padded(x, self.reach), self.weight, self.bias, dilation=self.dilation)
            return self(act(x))

        def unbiased(self, act, x, bias=None):
            """self(act(x + bias)) less self's bias (`folded`): the activation kernel adds the bias before."""
            return F.conv1d(act.padded(x, self.reach, bias), self.weight, dilation=self.dilation)

        def forward(self, x):
            if self.wide:  # padded both sides, the right overhang dropped
                out = F.conv2d(x, self.weight, self.bias, padding=(0, self.reach), dilation=(1, self.dilation))
                return out[..., : x.shape[-1]]
            return F.conv1d(F.pad(x, (self.reach, 0)), self.weight, self.bias, dilation=self.dilation)

    class UpSample(torch.nn.Module):
        """A grouped transposed convolution, its overhang trimmed on the right: frames x stride out."""

        def __init__(self, nemo):
            super().__init__()
            conv = nemo.conv
            self.weight, self.bias = frozen(conv.weight), frozen(conv.bias)
            self.stride, self.groups = conv.stride[0], conv.groups
            self.left, self.right = nemo.padding_left, nemo.padding_right
            self.wide = building["wide"]

        def of(self, act, x):
            """self(act(x)); with kernel_upsampling, as one kernel."""
            if plan.kernel_upsampling and not self.wide:
                alpha, inverse = act.flat()
                return upsample(x, alpha, inverse, act.snake, act.slope, self.weight, self.bias, self.stride, self.left,
                                self.right)
            return self(act(x))

        def forward(self, x):
            if self.wide:
                out = F.conv_transpose2d(x, self.weight, self.bias, stride=(1, self.stride), groups=self.groups)
            else:
                out = F.conv_transpose1d(x, self.weight, self.bias, stride=self.stride, groups=self.groups)
            return out[..., self.left : out.shape[-1] - self.right]

    class Residual(torch.nn.Module):
        def __init__(self, nemo):
            super().__init__()
            self.act_in, self.conv_in = Activation(nemo.input_activation), Conv(nemo.input_conv)
            self.act_skip, self.conv_skip = Activation(nemo.skip_activation), Conv(nemo.skip_conv)

        def fuses(self, x) -> bool:
            return fused and x.shape[1] <= (plan.tma_channels if plan.tma else plan.fused_channels) and x.dim() == 3

        def folds(self, x) -> bool:
            """Whether this unit takes a stage's mean in its last kernel (`forward`'s scale and into)."""
            return x.dim() == 3 and plan.folded and (self.fuses(x) or kernel_activations)

        def forward(self, x, scale: float = 1.0, into=None):
            """x + the unit's two halves; where it `folds`, times scale, added to `into` if given."""
            if self.fuses(x):  # chained: the middle activated as the first convolution writes it
                skip = self.act_skip
                next_act = (*skip.flat(), skip.snake, skip.slope) if plan.chained else None
                middle = self.act_in.then(self.conv_in, x, next_act=next_act)
                return skip.then(self.conv_skip, middle, residual=x, scale=scale, into=into, activated=plan.chained)
            if self.folds(x):
                inner = self.conv_skip.unbiased(self.act_skip, self.conv_in.unbiased(self.act_in, x), self.conv_in.bias)
                return add_residual(inner, self.conv_skip.bias, x, scale, into)
            return x + self.conv_skip.of(self.act_skip, self.conv_in.of(self.act_in, x))

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            d = nemo_decoder
            if not isinstance(d.out_activation, (ClampActivation, torch.nn.Tanh)):
                raise unsupported(f"output {type(d.out_activation).__name__}")
            out = d.out_activation
            self.clamp = (out.min_value, out.max_value) if isinstance(out, ClampActivation) else None
            building["wide"] = channels_last or plan.wide_stages > 0
            self.pre = Conv(d.pre_conv)
            self.stages = torch.nn.ModuleList()
            self.wide_at = []  # each stage's layout: channels-last or not
            for k, (act, up, layer) in enumerate(zip(d.activations, d.up_sample_conv_layers, d.res_layers, strict=True)):
                building["wide"] = channels_last or k < plan.wide_stages
                chains = torch.nn.ModuleList(torch.nn.Sequential(*(Residual(b) for b in block.res_blocks))
                                             for block in layer.res_blocks)
                self.stages.append(torch.nn.ModuleList([Activation(act), UpSample(up), chains]))
                self.wide_at.append(building["wide"])
            building["wide"] = channels_last
            self.post_act, self.post = Activation(d.post_activation), Conv(d.post_conv)

        def forward(self, x):
            x = self.pre(self.enter(x))
            for k in range(len(self.stages)):
                x = self.stage(x, k)
            return self.leave(x)

        # forward's steps, also timed one by one (bench/codec_bench.py --stage-times)
        def enter(self, x):
            return self.laid_out(x, self.pre.wide)

        @staticmethod
        def laid_out(x, wide: bool):
            """x as a layer of that layout takes it: (batch, channels, 1, samples) channels-last, or
            (batch, channels, samples)."""
            if wide and x.dim() == 3:
                return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
            if not wide and x.dim() == 4:
                return x.squeeze(2).contiguous()
            return x

        def stage(self, x, k: int):
            """The k-th upsampling stage: activation, transposed convolution, residual blocks."""
            act, up, chains = self.stages[k]
            x = up.of(act, self.laid_out(x, self.wide_at[k]))
            if not chains[0][0].folds(x):
                return sum(chain(x) for chain in chains) / len(chains)  # HiFiGANResLayer: the mean of its blocks
            total = None  # the mean, each chain's last unit adding its share as it writes
            for chain in chains:
                y = x
                for unit in chain[:-1]:
                    y = unit(y)
                total = chain[-1](y, scale=1 / len(chains), into=total)
            return total

        def leave(self, x):
            """The last activation and convolution, and the output's clamp (or tanh)."""
            x = self.post.of(self.post_act, self.laid_out(x, self.post.wide))[:, 0]
            x = x[:, 0] if self.post.wide else x
            return x.clamp(*self.clamp) if self.clamp else torch.tanh(x)

    return Decoder().to(next(nemo_decoder.parameters()).dtype).eval()


def runs_channels_last(compile: bool, on_gpu: bool) -> bool:
    """Whether a codec loaded with these settings runs channels-last, when not told: CHANNELS_LAST."""
    return CHANNELS_LAST if CHANNELS_LAST is not None else compile and on_gpu


def load_codec(source: str, device: str = "auto", precision: str = "auto", tune_convs: bool = False,
               compile: bool = False, channels_last: bool | None = None, plan: DecoderPlan = DecoderPlan()):
    """Load the codec from a local `.nemo` file (restore_from) or a hub id (from_pretrained).

    precision: the decoder's weights and activations, "bf16" or "fp32" ("auto": bf16 on a GPU, fp32
    on the CPU). tune_convs: on a GPU, let cuDNN time its convolution algorithms for each new shape;
    off by default: on an H200 each new shape cost about 2.6 s of timing, a render's batches come in
    many shapes, and the tuned decoder ran no faster (bench/README.md). compile: torch.compile the decoder
    (ours, not NeMo's, whose type checks broke the graph) once, with symbolic batch and length, while
    loading: a minute or more. channels_last: the decoder's layers as 2-D convolutions on
    channels-last tensors (`_plain_decoder`); None: as CHANNELS_LAST says. plan: the rest of how the decoder
    runs (`DecoderPlan`: stages channels-last, Triton kernels). Returns a `Codec`. Raises CodecError with one line when it cannot be loaded.

    (The decoder as CUDA graphs, one replay for every 8 takes, was built and measured on 2026-12-01: no
    faster, 1,010x against 985x for 8 x 150 frames, since the decoder's time is the GPU's, not its
    launches; removed, bench/README.md, "Tenth session".)
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") else "fp32"
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = tune_convs
    if channels_last is None:
        channels_last = runs_channels_last(compile, device.startswith("cuda"))
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
    return Codec(model, device, compile, channels_last, plan)


class Codec:
    """A loaded codec. `decode` turns codes into float32 audio at SAMPLE_RATE: NeMo's own
    dequantizer, then our plain copy of its decoder (`_plain_decoder`)."""

    def __init__(self, model, device: str, compile: bool = False, channels_last: bool = False,
                 plan: DecoderPlan = DecoderPlan()):
        import torch

        self.model = model
        self.device = device
        if model.sample_rate != SAMPLE_RATE or model.samples_per_frame != SAMPLES_PER_FRAME:
            raise CodecError(
                f"codec runs at {model.sample_rate} Hz, {model.samples_per_frame} samples a frame; "
                f"KaniTTS needs {SAMPLE_RATE} Hz, {SAMPLES_PER_FRAME}"
            )
        if plan.kernels and (compile or channels_last or not _kernels_usable(device)):
            plan = plan.torch_only()
        if plan.fused and plan.tma:  # no tensor memory accelerator before Hopper; float32 not measured so
            from renderer.codec_kernels import descriptors_usable

            if not descriptors_usable(torch.device(device), next(model.parameters()).dtype):
                plan = replace(plan, tma=False)
        self.kernels_failed = ""  # why the plan's kernels could not run here, when they could not
        self._lay_out(plan, channels_last)
        self.least_rows = 1
        self.most_rows = sys.maxsize  # takes a batch; halved by decode when the GPU runs out of memory
        self.frames = self.padded = 0  # frames of takes decoded, and of the padded batches they went in
        self.counting = threading.Lock()  # decode may run on several threads at once
        self.streams = threading.local()  # on a GPU, each decoding thread's own CUDA stream
        self.threads = 0  # threads that have decoded on the GPU so far
        if plan.kernels and device.startswith("cuda"):  # Triton compiles its variants now, not on two threads
            self._warm_kernels(channels_last)
        if compile:  # batch and length vary: one graph with symbolic sizes, not one per shape
            self.decoder = torch.compile(self.decoder, dynamic=True)
            self.least_rows = 2  # torch.compile specializes a size of 1: a lone take would compile again
            self.decode([np.zeros((NUM_CODEBOOKS, PAD_FRAMES), np.int64)])  # compiled now, as part of loading

    def _lay_out(self, plan: DecoderPlan, channels_last: bool) -> None:
        self.plan = plan  # as it runs here
        self.decoder = _plain_decoder(self.model.audio_decoder, channels_last, plan)

    def _warm_kernels(self, channels_last: bool) -> None:
        """Decode once, so that Triton compiles the plan's kernels; where they fail (a card with less shared memory
        than their tiles need), say why in `kernels_failed` and decode without descriptors (tma, whose tiles need the
        most), or else without any kernel."""
        said = []
        while True:
            try:
                self.decode([np.zeros((NUM_CODEBOOKS, PAD_FRAMES), np.int64)])
                break
            except Exception as err:  # noqa: BLE001 - Triton's compile and resource errors have no common base
                if self.plan.tma:
                    said.append(f"the codec's descriptor kernels could not run on {self.device}, so it decodes by "
                                f"pointers: {first_line(err)}")
                    self._lay_out(replace(self.plan, tma=False), channels_last)
                    continue
                said.append(f"the codec's Triton kernels could not run on {self.device}, so it decodes without them: "
                            f"{first_line(err)}")
                self._lay_out(self.plan.torch_only(), channels_last)
                break
        self.kernels_failed = "; ".join(said)

    def decode(self, codes: list[np.ndarray]) -> list[np.ndarray]:
        """Decode takes in batches of like length (`batches_by_frames`).

        codes: each (4, frames) int64 in 0..4031, frames may differ. Returns, in order, float32
        mono audio of frames * 1,764 samples each. A batch's takes are padded to its longest and
        trimmed back to their own length. A batch the GPU has no memory for is split in halves, and
        the smaller size kept for later batches (`most_rows`): a small card decodes in the memory
        the engines left it. Raises CodecError when even one take does not fit.
        """
        import torch

        out = [np.zeros(0, dtype=np.float32) if c.shape[1] == 0 else None for c in codes]
        todo = [i for i, audio in enumerate(out) if audio is None]
        lengths = [codes[i].shape[1] for i in todo]
        batches = deque([todo[k] for k in batch] for batch in batches_by_frames(lengths, rows_for=self.rows_for))
        while batches:
            part = batches.popleft()
            if len(part) > self.most_rows:
                batches.appendleft(part[self.most_rows:])
                part = part[:self.most_rows]
            try:
                audio = self._decode_rows([codes[i] for i in part])
            except torch.OutOfMemoryError as err:
                if len(part) == 1:
                    raise CodecError("out of GPU memory while decoding a single take: lower --gpu-memory (the "
                                     "speech engine's share) to leave the codec more; finished chunks are kept") from err
                torch.cuda.empty_cache()  # what the failed batch left cached, given back before the halves
                self.most_rows = len(part) // 2
                batches.appendleft(part)
                continue
            for i, samples in zip(part, audio, strict=True):
                out[i] = samples
        return out

    def _decode_rows(self, codes: list[np.ndarray]) -> list[np.ndarray]:
        """One batch through the dequantizer and the decoder; torch.OutOfMemoryError passes up."""
        import torch

        longest = padded_frames(max(c.shape[1] for c in codes))  # causal: padding at the end is inert
        rows = self.rows_for(len(codes), longest)
        frames, padded = sum(c.shape[1] for c in codes), rows * longest
        with self.counting:
            self.frames += frames
            self.padded += padded
        mine = self.counted_here()
        self.streams.counted = (mine[0] + frames, mine[1] + padded)
        tokens = torch.zeros((rows, NUM_CODEBOOKS, longest), dtype=torch.long)
        lengths = torch.zeros(rows, dtype=torch.long)
        for row, c in enumerate(codes):
            tokens[row, :, : c.shape[1]] = torch.from_numpy(c)
            lengths[row] = c.shape[1]
        # The current device for what NeMo makes without naming one: cuda:1's codec works on cuda:1.
        on_device = torch.cuda.device(self.device) if self.device.startswith("cuda") else nullcontext()
        with torch.inference_mode(), on_device, self._stream():
            latents = self.model.dequantize(tokens=tokens.to(self.device), tokens_len=lengths.to(self.device))
            audio = self.decoder(latents).float().cpu().numpy()
        return [audio[row, : c.shape[1] * SAMPLES_PER_FRAME].copy() for row, c in enumerate(codes)]

    def rows_for(self, takes: int, frames: int) -> int:
        """The rows a batch of `takes` padded to `frames` is decoded in: at least `least_rows` (empty
        rows are work too)."""
        return max(takes, self.least_rows)

    def counted_here(self) -> tuple[int, int]:
        """`frames` and `padded`, of what this thread decoded."""
        return getattr(self.streams, "counted", (0, 0))

    def _stream(self):
        """On a GPU, this thread's own CUDA stream, as the current one: threads decoding at once then
        overlap one batch's host work (tokens in, launches, audio out) with another's kernels. The
        first thread to decode keeps the device's default stream."""
        import torch

        if not self.device.startswith("cuda"):
            return nullcontext()
        if not hasattr(self.streams, "stream"):
            with self.counting:
                self.threads += 1
                first = self.threads == 1
            self.streams.stream = None if first else torch.cuda.Stream(self.device)
        return nullcontext() if self.streams.stream is None else torch.cuda.stream(self.streams.stream)


def _kernels_usable(device: str) -> bool:
    """Whether codec_kernels can run for a codec on `device` (and Triton is there to import)."""
    if not (device.startswith("cuda") or os.environ.get("TRITON_INTERPRET") == "1"):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def padded_frames(frames: int) -> int:
    """A batch's length for takes of at most `frames`: the next multiple of PAD_FRAMES."""
    return -(-frames // PAD_FRAMES) * PAD_FRAMES


def batches_by_frames(lengths: Sequence[int], budget: int = DECODE_BATCH_FRAMES, cost: int = BATCH_COST_FRAMES,
                      rows_for: Callable[[int, int], int] = lambda takes, frames: takes) -> list[list[int]]:
    """Indices into `lengths` (frames of each take), in batches of takes of like length, longest first,
    each within `budget` frames (its rows x its padded longest; a longer take is a batch of its own).

    Every row costs the decoder its batch's padded longest, so the batches are the split of the
    takes, by length, that costs least in padded frames plus `cost` frames a batch. `rows_for(takes,
    frames)`: the rows such a batch is decoded in. The bench book's takes (1.5 to 12 s) in a shuffled
    order, batched as they came, spent 30% of it on padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    least = [0] + [math.inf] * len(order)  # least[j]: the cost of the best split of the j longest takes
    start = [0] * (len(order) + 1)  # where the last batch of that split starts
    for end in range(1, len(order) + 1):
        for first in range(end - 1, -1, -1):
            width = padded_frames(lengths[order[first]])
            rows = rows_for(end - first, width)
            if end - first > 1 and rows * width > budget:
                break
            if least[first] + rows * width + cost < least[end]:
                least[end], start[end] = least[first] + rows * width + cost, first
    batches, end = [], len(order)
    while end:
        batches.append(order[start[end]:end])
        end = start[end]
    return batches[::-1]
