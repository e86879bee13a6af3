"""Triton kernels for the codec decoder's residual units and activations (`DecoderPlan`, on by default on a GPU).

NeMo's HiFi-GAN residual unit is activation, causal dilated convolution, activation, convolution, add. In
eager torch each of its two halves is about a dozen kernels: the half-snake's five elementwise ops and
its `cat`, the padded copy of the convolution's input, cuDNN's layout changes, the convolution, the add.
The last stages have 27 and 54 channels at 882 and 1,764 samples a frame: too narrow for cuDNN's tiles,
and most of the decoder's bytes (bench/README.md, "Tenth session"). `snake_conv` does one half in one
kernel: it reads the input once per tap, multiplies with the tap's weights on the tensor cores, and adds
the bias and, for the second half, the residual before it writes. `activate` writes the activation, and
the next convolution's causal padding, in one pass: for `snake_conv(apart=True)`, and for the wider
stages' activations before cuDNN convolves. On an H200, 16 x 150 frames, bf16 (bench/README.md, "Eleventh"
and "Twelfth session"): activated apart, the convolution kernel ran 2.40x as fast as cuDNN's unit at 27
channels and 1.79x at 54 (activating at each tap instead: 1.77x and 1.12x); `activate` then cuDNN, 1.53x
to 1.62x at every width, 108 channels included, where the convolution kernel only matched cuDNN.
`upsample` is a stage's activation and grouped transposed convolution in one pass (its five stages 2.5 ms against
cuDNN's 21.1 at 16 x 150 frames), and `add_residual` a unit's end where cuDNN convolved without the bias
(`DecoderPlan.folded`), "Thirteenth session".

By pointers, Triton loads a tap's window one sample at a time (it cannot prove a shifted pointer aligned).
`snake_conv(tma=True)` (`DecoderPlan.tma`, on Hopper and later) moves every tile by the GPU's tensor memory
accelerator instead, from the activation written channels-last (`activate(channels_last=True)`): a descriptor's
window must start 16-byte aligned along its innermost dimension (bench/tma_probe.py), and a tap's shift is then along
the outer one. The kernel ran 2.0x (27 channels) to 2.9x (108) as fast, and the decoder 3,534x against 2,141x
("Fourteenth session").

On the CPU it runs only under Triton's interpreter (TRITON_INTERPRET=1, set before this module is
imported), which the tests use, in float32.
"""
from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

BLOCK_T = 128  # output samples a program makes (float32)
MOST_BLOCK_C = 64  # channels a program takes in (and makes) at once; more are looped over
# bf16: output samples a program makes, and its warps, by its channel block: the fastest of
# bench/snake_conv_bench.py's sweep on an H200 (eleventh session), 16 x 150 frames, against cuDNN after the
# eager activation: 1.77x at 27 channels (1.48x at 128 samples and 4 warps), 1.12x at 54 (0.39x). At 108
# channels no tile came near eager (0.57x at best): the decoder fuses only up to FUSED_MOST_CHANNELS.
BF16_TILES = {32: (256, 4), 64: (128, 8)}
# The same by descriptors (`snake_conv`'s tma), by the output channels in whole blocks: the fastest of
# bench/snake_conv_bench.py's sweep on an H200 (fourteenth session), 16 x 150 frames, 7 taps, activated apart: 0.57 ms
# at 27 channels, 0.74 at 54, 0.80 at 108, against 0.96, 1.46 and 1.35 (the activation kernel, then cuDNN) before
TMA_TILES = {32: (256, 4), 64: (128, 8), 128: (256, 8)}
# A program of the activation (or residual add) kernel: samples, channels (at most), warps. The fastest of
# bench/snake_conv_bench.py's sweep on an H200 (thirteenth session), 16 x 150 frames: at 27 to 108 channels 1.2-1.3x
# as fast as 256 x 32 on 4 warps (149 registers a thread, cuobjdump; this tile 58), 2,100 GB/s at 54 channels
ELEMENTWISE_TILE = {"BLOCK_T": 1024, "BLOCK_C": 4, "num_warps": 8}
# A program of the up-sampling kernel: input samples, output channels (at most), warps. The fastest of the same
# sweep: its five stages 2.5 ms in all against cuDNN's 21.1 (13.7 at the last, 0.83 here); 32 x 256 had taken 255
# registers and spilled
UPSAMPLE_TILE = {"BLOCK_T": 32, "BLOCK_C": 8, "num_warps": 4}
# The activation kernel writing channels-last (`activate(channels_last=True)`, for `snake_conv`'s descriptors): a
# sample's channels (at most 64) written together. A first guess, not yet swept.
CHANNELS_LAST_TILE = {"BLOCK_T": 128, "BLOCK_C": 64, "num_warps": 4}


@triton.jit
def _activation(x, alpha, inverse, is_snake, slope, FAST_SIN: tl.constexpr):
    """Snake (x + inverse sin(alpha x)^2) where is_snake, leaky ReLU elsewhere; float32 in and out. On a GPU
    the hardware's sine (PTX sin.approx: about 2^-20 off on [-pi, pi], more for larger arguments;
    tests/test_gpu.py checks the audio), not libdevice's accurate one of dozens of instructions."""
    if FAST_SIN:
        wave = libdevice.fast_sinf(alpha * x)
    else:
        wave = tl.sin(alpha * x)
    return tl.where(is_snake, x + inverse * wave * wave, tl.where(x >= 0, x, x * slope))


@triton.jit(do_not_specialize=["x_batch", "x_chan", "y_batch", "y_chan", "channels", "length", "snake", "pad"])
def _snake_kernel(x_ptr, x_batch, x_chan, alpha_ptr, inv_ptr, b_ptr, y_ptr, y_batch, y_chan, channels, length, snake,
                  slope, pad, HAS_BIAS: tl.constexpr, FAST_SIN: tl.constexpr, BLOCK_T: tl.constexpr,
                  BLOCK_C: tl.constexpr, CHANNELS_LAST: tl.constexpr):
    """The activation alone, into a tensor `pad` samples longer, those first (`activate`): y[t] =
    act(x[t - pad] (+ bias)), and act(0) = 0 for Snake and leaky ReLU alike, so the padding is zeros.
    CHANNELS_LAST (a power of two, or 0): y is (rows, samples, CHANNELS_LAST), its channels past `channels` zeros."""
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    row = tl.program_id(1)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    is_snake = c < snake
    alpha = tl.load(alpha_ptr + c, mask=is_snake, other=1.0).to(tl.float32)
    inverse = tl.load(inv_ptr + c, mask=is_snake, other=0.0).to(tl.float32)
    written = (c[:, None] < channels) & (t[None, :] < length + pad)
    at = t - pad
    x = tl.load(x_ptr + row * x_batch + c[:, None] * x_chan + at[None, :], mask=written & (at[None, :] >= 0),
                other=0.0).to(tl.float32)
    if HAS_BIAS:  # the previous convolution's, which it left out; not on the padding
        bias = tl.load(b_ptr + c, mask=c < channels, other=0.0).to(tl.float32)
        x += tl.where(at[None, :] >= 0, bias[:, None], 0.0)
    act = _activation(x, alpha[:, None], inverse[:, None], is_snake[:, None], slope, FAST_SIN)
    if CHANNELS_LAST:
        tl.store(y_ptr + (row * (length + pad) + t[None, :]) * CHANNELS_LAST + c[:, None],
                 tl.where(c[:, None] < channels, act, 0.0).to(y_ptr.dtype.element_ty),
                 mask=(c[:, None] < CHANNELS_LAST) & (t[None, :] < length + pad))
    else:
        tl.store(y_ptr + row * y_batch + c[:, None] * y_chan + t[None, :], act.to(y_ptr.dtype.element_ty),
                 mask=written)


@triton.jit(do_not_specialize=["res_batch", "res_chan", "channels", "length"])
def _residual_kernel(conv_ptr, b_ptr, res_ptr, res_batch, res_chan, y_ptr, channels, length, scale,
                     ACCUMULATE: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr):
    """y = scale (conv + bias + residual) (+ y, ACCUMULATE), conv and y contiguous (`add_residual`)."""
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    row = tl.program_id(1)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    written = (c[:, None] < channels) & (t[None, :] < length)
    at = row * channels * length + c[:, None] * length + t[None, :]
    total = tl.load(conv_ptr + at, mask=written, other=0.0).to(tl.float32)
    total += tl.load(b_ptr + c, mask=c < channels, other=0.0).to(tl.float32)[:, None]
    total += tl.load(res_ptr + row * res_batch + c[:, None] * res_chan + t[None, :], mask=written,
                     other=0.0).to(tl.float32)
    total = total * scale
    if ACCUMULATE:
        total += tl.load(y_ptr + at, mask=written, other=0.0).to(tl.float32)
    tl.store(y_ptr + at, total.to(y_ptr.dtype.element_ty), mask=written)


@triton.jit(do_not_specialize=["x_batch", "x_chan", "y_batch", "y_chan", "channels", "in_len", "out_len", "snake",
                               "left"])
def _upsample_kernel(x_ptr, x_batch, x_chan, alpha_ptr, inv_ptr, w_ptr, b_ptr, y_ptr, y_batch, y_chan, channels, in_len,
                     out_len, snake, slope, left, FAST_SIN: tl.constexpr, STRIDE: tl.constexpr, TAPS: tl.constexpr,
                     IN_PER: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_C: tl.constexpr):
    """The activation, then a grouped transposed convolution of `channels` groups (each of IN_PER input channels and
    one output), trimmed by `left` samples: y[c, j STRIDE + r - left] = bias[c] + sum over its inputs i and m of
    w[i, r + m STRIDE] act(x[i, j - m]). A program takes BLOCK_J input samples and writes each phase r of the
    outputs they start, one phase at a time: its loads run along the samples, its weights are a vector a channel."""
    j = tl.program_id(0) * BLOCK_J + tl.arange(0, BLOCK_J)
    row = tl.program_id(1)
    c = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < channels
    bias = tl.load(b_ptr + c, mask=c_ok, other=0.0).to(tl.float32)
    x_row = x_ptr + row * x_batch
    for r in tl.static_range(STRIDE):
        t = j * STRIDE + r - left
        acc = tl.full((BLOCK_C, BLOCK_J), 0.0, tl.float32) + bias[:, None]
        for p in tl.static_range(IN_PER):
            ci = c * IN_PER + p
            is_snake = ci < snake
            alpha = tl.load(alpha_ptr + ci, mask=is_snake & c_ok, other=1.0).to(tl.float32)
            inverse = tl.load(inv_ptr + ci, mask=is_snake & c_ok, other=0.0).to(tl.float32)
            for m in tl.static_range((TAPS - r + STRIDE - 1) // STRIDE):  # the taps r + m STRIDE < TAPS
                at = j - m
                inside = c_ok[:, None] & (at[None, :] >= 0) & (at[None, :] < in_len)
                x = tl.load(x_row + ci[:, None] * x_chan + at[None, :], mask=inside, other=0.0).to(tl.float32)
                act = _activation(x, alpha[:, None], inverse[:, None], is_snake[:, None], slope, FAST_SIN)
                w = tl.load(w_ptr + ci * TAPS + (r + m * STRIDE), mask=c_ok, other=0.0).to(tl.float32)
                acc += act * w[:, None]
        written = c_ok[:, None] & (t[None, :] >= 0) & (t[None, :] < out_len)
        tl.store(y_ptr + row * y_batch + c[:, None] * y_chan + t[None, :], acc.to(y_ptr.dtype.element_ty),
                 mask=written)


# Lengths and strides change with every batch: not specialized on (Triton would compile again for each new
# divisibility by 16, possibly on a second decoding thread). Nor are the taps and the dilation: as constants
# they made 24 variants a precision, 1.5-5 s of compiling each on an H200 (eleventh session); now its taps are a loop
# at run time (all its measurements are of this), and a decoder has a variant for each channel block (32, 64, 128)
# and half of a unit (the first, its middle activated; the second, its residual and stage's sum).
@triton.jit(do_not_specialize=["x_batch", "x_chan", "res_batch", "res_chan", "y_batch", "y_chan", "c_in", "c_out",
                               "length", "snake", "taps", "dilation", "out_snake", "w_rows", "w_cols"])
def _snake_conv_kernel(x_ptr, x_batch, x_chan, alpha_ptr, inv_ptr, w_ptr, b_ptr, res_ptr, res_batch, res_chan,
                       out_alpha_ptr, out_inv_ptr, y_ptr, y_batch, y_chan, c_in, c_out, length, snake, slope, taps,
                       dilation, scale, out_snake, out_slope, w_rows, w_cols, x_desc, w_desc, res_desc, y_desc,
                       HAS_RESIDUAL: tl.constexpr, ACCUMULATE: tl.constexpr, IEEE: tl.constexpr,
                       FAST_SIN: tl.constexpr, ACTIVATE: tl.constexpr, OUT_ACTIVATE: tl.constexpr, TMA: tl.constexpr,
                       OUT_CHANNELS_LAST: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_CI: tl.constexpr,
                       BLOCK_CO: tl.constexpr):
    """y = scale (conv(act(x)) + bias (+ residual)) (+ y, ACCUMULATE), its tiles channels by samples; OUT_ACTIVATE:
    y = out_act(conv(act(x)) + bias), the next convolution's activation applied before writing. (Tiled
    samples by channels instead, by pointers, it was no faster at any tile on an H200: bench/README.md, "Thirteenth
    session".) TMA (x activated already, channels-last): every tile
    moved by the GPU's tensor memory accelerator through the descriptors (`snake_conv`'s `_descriptors`) instead of
    the pointers, whose loads at a tap's shift Triton cannot prove aligned and so makes one sample at a time; the
    product then samples by channels. OUT_CHANNELS_LAST (with TMA): y written channels-last, as TMA takes x."""
    t0 = tl.program_id(0) * BLOCK_T
    t = t0 + tl.arange(0, BLOCK_T)
    row = tl.program_id(1)
    co0 = tl.program_id(2) * BLOCK_CO
    co = co0 + tl.arange(0, BLOCK_CO)
    # not tl.zeros: a jit function, which Triton's interpreter (the tests) runs only if set before triton's import
    co2, t2 = co[:, None], t[None, :]
    acc = tl.full((BLOCK_CO, BLOCK_T), 0.0, tl.float32)
    x_row = x_ptr + row * x_batch
    if TMA:  # x channels-last: a tap's window is a run of whole rows of channels, which a descriptor takes from any
        # sample on (left of the start as zeros); a window's first sample anywhere along a row of samples faults
        # (bench/tma_probe.py)
        acc_t = tl.full((BLOCK_T, BLOCK_CO), 0.0, tl.float32)
        for ci0 in range(0, c_in, BLOCK_CI):
            for j in range(taps):
                x = x_desc.load([row, t0 - (taps - 1 - j) * dilation, ci0]).reshape(BLOCK_T, BLOCK_CI)
                w = tl.trans(w_desc.load([j * w_rows + co0, ci0]))
                if IEEE:
                    acc_t += tl.dot(x, w, input_precision="ieee")
                else:
                    acc_t += tl.dot(x, w)
        acc = tl.trans(acc_t)
    else:
        for ci0 in range(0, c_in, BLOCK_CI):
            ci = ci0 + tl.arange(0, BLOCK_CI)
            ci_x, ci_w = ci[:, None], ci[None, :]  # an input channel: a row of x's tile, a column of the weights'
            is_snake = ci_x < snake
            alpha = tl.load(alpha_ptr + ci_x, mask=is_snake, other=1.0).to(tl.float32)
            inverse = tl.load(inv_ptr + ci_x, mask=is_snake, other=0.0).to(tl.float32)
            for j in range(taps):
                # causal: out[t] = sum over taps j of W[:, :, j] x[t - (taps - 1 - j) dilation], zero before the start
                at = t2 - (taps - 1 - j) * dilation
                inside = (ci_x < c_in) & (at >= 0) & (at < length)
                x = tl.load(x_row + ci_x * x_chan + at, mask=inside, other=0.0).to(tl.float32)
                if ACTIVATE:  # each tap activates its window again (Triton cannot shift a tile in registers)
                    act = _activation(x, alpha, inverse, is_snake, slope, FAST_SIN)
                else:  # activated apart (`activate`): a convolution alone
                    act = x
                w = tl.load(w_ptr + (j * w_rows + co2) * w_cols + ci_w, mask=(co2 < c_out) & (ci_w < c_in), other=0.0)
                if IEEE:
                    acc += tl.dot(w, act.to(w.dtype), input_precision="ieee")
                else:
                    acc += tl.dot(w, act.to(w.dtype))
    acc += tl.load(b_ptr + co2, mask=co2 < c_out, other=0.0).to(tl.float32)
    written = (co2 < c_out) & (t2 < length)
    if OUT_ACTIVATE:
        out_is_snake = co2 < out_snake
        out_alpha = tl.load(out_alpha_ptr + co2, mask=out_is_snake, other=1.0).to(tl.float32)
        out_inverse = tl.load(out_inv_ptr + co2, mask=out_is_snake, other=0.0).to(tl.float32)
        acc = _activation(acc, out_alpha, out_inverse, out_is_snake, out_slope, FAST_SIN)
    if HAS_RESIDUAL:
        if TMA:
            acc += res_desc.load([row, co0, t0]).reshape(BLOCK_CO, BLOCK_T).to(tl.float32)
        else:
            acc += tl.load(res_ptr + row * res_batch + co2 * res_chan + t2, mask=written, other=0.0).to(tl.float32)
    out = y_ptr + row * y_batch + co2 * y_chan + t2
    acc = acc * scale
    if ACCUMULATE:
        if TMA:
            acc += y_desc.load([row, co0, t0]).reshape(BLOCK_CO, BLOCK_T).to(tl.float32)
        else:
            acc += tl.load(out, mask=written, other=0.0).to(tl.float32)
    if OUT_CHANNELS_LAST:  # the next convolution's x (its padding channels zeros: no weight, no bias there)
        y_desc.store([row, t0, co0], tl.trans(acc.to(y_ptr.dtype.element_ty)).reshape(1, BLOCK_T, BLOCK_CO))
    elif TMA:  # clipped to the tensor's channels and samples
        y_desc.store([row, co0, t0], acc.to(y_ptr.dtype.element_ty).reshape(1, BLOCK_CO, BLOCK_T))
    else:
        tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=written)


def _tile(default: dict, channels: int, tiles: dict | None = None) -> dict:
    """An elementwise kernel's tile: `default` with `tiles` over it, its channel block no wider than the channels."""
    tile = {**default, **(tiles or {})}
    return {**tile, "BLOCK_C": min(tile["BLOCK_C"], triton.next_power_of_2(channels))}


def _block(channels: int) -> int:
    """Channels a program takes at once: a power of two from 16 (tl.dot's least) to MOST_BLOCK_C."""
    return min(MOST_BLOCK_C, max(16, triton.next_power_of_2(channels)))


def _variant(dtype: torch.dtype, residual: bool, c_in: int, c_out: int, on_gpu: bool, activate: bool = True,
             accumulate: bool = False, out_activate: bool = False, tma: bool = False) -> tuple[dict, dict]:
    """The kernel's compile-time arguments for one use, and its launch options. float32 runs unpipelined:
    pipelined, its 64-channel tiles would need up to 560 KB of shared memory (an H100 has 227 KB)."""
    full = dtype == torch.float32
    if full:
        samples, warps = BLOCK_T, 4
    elif tma:
        samples, warps = TMA_TILES.get(_across(c_out), (256, 8))
    else:
        samples, warps = BF16_TILES.get(_block(c_out), (BLOCK_T, 4))
    constants = {"HAS_RESIDUAL": residual, "ACCUMULATE": accumulate, "IEEE": full, "FAST_SIN": on_gpu,
                 "ACTIVATE": activate, "OUT_ACTIVATE": out_activate, "BLOCK_T": samples, "BLOCK_CI": _block(c_in),
                 "BLOCK_CO": _block(c_out)}
    return constants, {"num_warps": warps, "num_stages": 1 if full else 3}


def compile_for(capability: int, dtype: torch.dtype, residual: bool, c_in: int, c_out: int, activate: bool = True,
                out_activate: bool = False, tma: bool = False):
    """The kernel compiled ahead of time for a GPU of this compute capability (90: Hopper) as `snake_conv`
    would launch it, without a GPU (Triton's own ptxas): for the tests, its compiled form and needs. tma: its
    tiles moved by descriptors (x activated, channels-last; y so too with out_activate)."""
    constants, options = _variant(dtype, residual, c_in, c_out, on_gpu=True, activate=activate,
                                  out_activate=out_activate, tma=tma)
    constants.update(TMA=tma, OUT_CHANNELS_LAST=tma and out_activate)
    kind = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    ci, co, t = constants["BLOCK_CI"], constants["BLOCK_CO"], constants["BLOCK_T"]
    shapes = {"x_desc": [1, t, ci], "w_desc": [co, ci], "res_desc": [1, co, t] if residual else None,
              "y_desc": [1, t, co] if out_activate else [1, co, t]}
    kinds = {}
    for name, shape in shapes.items():
        if tma and shape:
            kinds[name] = f"tensordesc<{kind}[{','.join(map(str, shape))}]>"
        else:
            constants[name] = None  # unused: the pointers' kernel, or no residual
    return _compiled(_snake_conv_kernel, capability, dtype, constants, options, kinds)


def compile_upsample_for(capability: int, dtype: torch.dtype, c_out: int, stride: int = 7):
    """`upsample`'s kernel compiled ahead of time, as `compile_for` the convolution's (the nano codec's 2 stride taps,
    2 input channels an output)."""
    tile = _tile(UPSAMPLE_TILE, c_out)
    constants = {"FAST_SIN": True, "STRIDE": stride, "TAPS": 2 * stride, "IN_PER": 2, "BLOCK_J": tile["BLOCK_T"],
                 "BLOCK_C": tile["BLOCK_C"]}
    return _compiled(_upsample_kernel, capability, dtype, constants, {"num_warps": tile["num_warps"]})


def _compiled(kernel, capability: int, dtype: torch.dtype, constants: dict, options: dict, kinds: dict | None = None):
    """kinds: the signature's types of arguments neither pointers, numbers nor constants (descriptors)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    pointer = "*" + {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    signature = {name: "constexpr" if name in constants else (kinds or {}).get(name) or (
        pointer if name.endswith("_ptr") else "fp32" if name in ("slope", "scale", "out_slope") else "i32")
        for name in kernel.arg_names}
    source = ASTSource(fn=kernel, signature=signature, constexprs=constants)
    return triton.compile(source, target=GPUTarget("cuda", capability, 32), options=options)


def snake_conv(x: torch.Tensor, alpha: torch.Tensor | None, inverse: torch.Tensor | None, snake: int, slope: float,
               weight: torch.Tensor, bias: torch.Tensor, dilation: int, residual: torch.Tensor | None = None,
               tiles: dict | None = None, apart: bool = False, into: torch.Tensor | None = None, scale: float = 1.0,
               activated: bool = False, next_act: tuple | None = None, tma: bool = False):
    """conv(act(x)) + bias (+ residual): act is Snake (x + inverse sin(alpha x)^2) on the first `snake`
    channels and leaky ReLU (`slope`) on the rest; conv is causal, of `weight` laid out (taps, out, in) (or as
    `padded_taps` pads it), at `dilation`. x: (batch, in, samples), its samples contiguous; the result (batch, out,
    samples), x's dtype, its channels `aligned`. tiles: any of BLOCK_T, BLOCK_CI, BLOCK_CO, num_warps and num_stages
    in place of `_variant`'s (for bench/snake_conv_bench.py). apart: the activation as a kernel of its own
    (`activate`), once, and then the convolution alone, instead of activating each tap's window again. scale: the
    result times this; into: added to this tensor, in place, and that returned (a stage's mean of its chains,
    summed as they finish). activated: x is act(x) already (alpha and the rest unread). next_act: (alpha, inverse,
    snake, slope) of the next activation, applied to the result before it is written (with no residual, scale or
    into). tma: where the convolution reads x activated (apart or activated) on a GPU with a tensor memory
    accelerator (Hopper on) in 16 bits, and every tensor's channels are `aligned`, the kernel moves its tiles by
    descriptors (`_descriptors`); elsewhere by pointers."""
    rows, c_in, length = x.shape
    c_out, taps = bias.shape[0], weight.shape[0]
    per_tap = not (apart or activated)
    tma = tma and not per_tap and descriptors_usable(x.device, x.dtype)
    if apart and not activated:
        x, alpha, snake = activate(x, alpha, inverse, snake, slope, channels_last=tma), None, 0
    tma = tma and is_channels_last(x) and (residual is None or aligned(residual)) and (into is None or aligned(into))
    if x.stride(2) != 1 and not tma:
        x = x.contiguous()
    if residual is not None and residual.stride(2) != 1:
        residual = residual.contiguous()
    out_channels_last = tma and next_act is not None
    if into is not None:
        y = into
    else:
        y = (channels_last_empty if out_channels_last else aligned_empty)(rows, c_out, length, x)
    if alpha is None:  # leaky ReLU only: any tensor stands in, none of it is read
        alpha = inverse = bias
    out_alpha, out_inverse, out_snake, out_slope = next_act or (None, None, 0, 0.0)
    if out_alpha is None:
        out_alpha = out_inverse = bias
    res = residual if residual is not None else y
    constants, options = _variant(x.dtype, residual is not None, c_in, c_out, x.is_cuda, activate=per_tap,
                                  accumulate=into is not None, out_activate=next_act is not None, tma=tma)
    constants.update(TMA=tma, OUT_CHANNELS_LAST=out_channels_last)
    for key, value in (tiles or {}).items():
        (options if key in options else constants)[key] = value
    descriptors = (None,) * 4
    if tma:
        weight = weight if weight.shape[1:] == (_across(c_out), _across(c_in)) else padded_taps(weight)
        descriptors = _descriptors(x, weight, residual, y, constants)
    grid = (triton.cdiv(length, constants["BLOCK_T"]), rows, triton.cdiv(c_out, constants["BLOCK_CO"]))
    _snake_conv_kernel[grid](x, x.stride(0), x.stride(1), alpha, inverse, weight, bias, res, res.stride(0),
                             res.stride(1), out_alpha, out_inverse, y, y.stride(0), y.stride(1), c_in, c_out, length,
                             snake, float(slope), taps, dilation, float(scale), out_snake, float(out_slope),
                             weight.shape[1], weight.shape[2], *descriptors, **constants, **options)
    return y


ALIGN = 8  # samples: a channel's stride in 16-byte steps at 16 bits, as a descriptor needs it


def aligned_empty(rows: int, channels: int, length: int, like: torch.Tensor) -> torch.Tensor:
    """An empty (rows, channels, length) tensor of `like`'s dtype and device whose channels start every ALIGN
    samples (its storage padded past `length`): the layout `snake_conv`'s descriptors take. Contiguous where the
    length is a multiple of ALIGN. Torch's ops take it as any strided tensor."""
    padded = triton.cdiv(length, ALIGN) * ALIGN
    return torch.empty((rows, channels, padded), dtype=like.dtype, device=like.device)[..., :length]


def aligned(x: torch.Tensor) -> bool:
    """Whether x (rows, channels, samples) is laid out as `aligned_empty` lays it out (16-byte strides and start)."""
    channels = x.shape[1]
    step = 16 // x.element_size()
    return (x.stride(2) == 1 and x.stride(1) % step == 0 and x.stride(0) == channels * x.stride(1)
            and x.data_ptr() % 16 == 0)


def _across(channels: int) -> int:
    """Channels padded to whole blocks of the kernel's (`_block`)."""
    return triton.cdiv(channels, _block(channels)) * _block(channels)


def padded_taps(weight: torch.Tensor) -> torch.Tensor:
    """A (taps, out, in) weight with zeros to whole channel blocks (`_across`), as `snake_conv`'s descriptors read
    it (the pointers read it too): made once for a layer, where snake_conv would pad it at every call."""
    taps, c_out, c_in = weight.shape
    out = weight.new_zeros((taps, _across(c_out), _across(c_in)))
    out[:, :c_out, :c_in] = weight
    return out


def channels_last_empty(rows: int, channels: int, length: int, like: torch.Tensor, make=torch.empty) -> torch.Tensor:
    """An empty (rows, channels, length) tensor of `like`'s dtype and device held channels-last: the transposed view
    of (rows, length, channels in whole blocks of the kernel's, `_across`), as `snake_conv`'s descriptors take x.
    make: torch.zeros for its padding channels zeros."""
    buffer = make((rows, length, _across(channels)), dtype=like.dtype, device=like.device)
    return buffer.transpose(1, 2)[:, :channels]


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A copy of x (rows, channels, samples) laid out as `channels_last_empty` lays it out, its padding channels zeros
    (as the kernels write them: the padded weights' zero columns times anything else but a NaN are zeros)."""
    out = channels_last_empty(*x.shape, x, make=torch.zeros)
    out.copy_(x)
    return out


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether x is laid out as `channels_last_empty` lays it out."""
    _, channels, length = x.shape
    across = _across(channels)
    return (x.stride(1) == 1 and x.stride(2) == across and x.stride(0) == length * across
            and (across * x.element_size()) % 16 == 0 and x.data_ptr() % 16 == 0)


@functools.cache
def _capability(device: int) -> int:
    return torch.cuda.get_device_capability(device)[0]


def descriptors_usable(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether `snake_conv` can move tiles of this dtype on this device by descriptors: in 16 bits on a GPU of compute
    capability 9 or more (as measured; float32 only under the interpreter), or under Triton's interpreter (the
    tests). `Codec` asks it too, to keep `DecoderPlan.tma` off where it is not."""
    if device.type == "cuda":
        return dtype.itemsize == 2 and _capability(device.index or 0) >= 9
    return os.environ.get("TRITON_INTERPRET") == "1"


def _descriptors(x: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor | None, y: torch.Tensor,
                 constants: dict):
    """The kernel's descriptors, in tiles of its blocks: of x (rows, samples, channels: it is channels-last), the
    padded weight (its taps' rows of output channels one after another), the residual (or None) and y (rows,
    channels, samples; y channels-last where the kernel writes it so)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    def samples_by_channels(t, block_c):
        return TensorDescriptor(t, [t.shape[0], t.shape[2], t.stride(2)], [t.stride(0), t.stride(2), 1],
                                [1, block_t, block_c])

    def channels_by_samples(t):
        return TensorDescriptor(t, list(t.shape), list(t.stride()), [1, block_co, block_t])

    block_t, block_ci, block_co = constants["BLOCK_T"], constants["BLOCK_CI"], constants["BLOCK_CO"]
    taps, w_rows, w_cols = weight.shape
    flat_w = TensorDescriptor(weight, [taps * w_rows, w_cols], [w_cols, 1], [block_co, block_ci])
    y_d = samples_by_channels(y, block_co) if constants["OUT_CHANNELS_LAST"] else channels_by_samples(y)
    res_d = channels_by_samples(residual) if residual is not None else None
    return samples_by_channels(x, block_ci), flat_w, res_d, y_d


def activate(x: torch.Tensor, alpha: torch.Tensor | None, inverse: torch.Tensor | None, snake: int,
             slope: float, pad: int = 0, bias: torch.Tensor | None = None, tiles: dict | None = None,
             channels_last: bool = False) -> torch.Tensor:
    """act(x) as `snake_conv` applies it, as one kernel: x (batch, channels, samples), its samples contiguous;
    the result contiguous (channels_last: as `channels_last_empty` lays it out), x's dtype, after `pad` zeros (a
    causal convolution's left padding, written in the same pass: no copy by F.pad).
    bias: (channels,), added to x first (a convolution's, left out of it). tiles: BLOCK_T, BLOCK_C, num_warps in
    place of ELEMENTWISE_TILE's (CHANNELS_LAST_TILE's)."""
    rows, channels, length = x.shape
    if x.stride(2) != 1:
        x = x.contiguous()
    if channels_last:
        y = channels_last_empty(rows, channels, pad + length, x)
    else:
        y = torch.empty((rows, channels, pad + length), dtype=x.dtype, device=x.device)
    if alpha is None:  # leaky ReLU only: any tensor stands in, none of it is read
        alpha = inverse = y
    across = y.stride(2) if channels_last else 0  # the channels a sample holds, padding included
    if channels_last:
        tile = {**CHANNELS_LAST_TILE, "BLOCK_C": min(CHANNELS_LAST_TILE["BLOCK_C"], across), **(tiles or {})}
    else:
        tile = _tile(ELEMENTWISE_TILE, channels, tiles)
    grid = (triton.cdiv(pad + length, tile["BLOCK_T"]), rows, triton.cdiv(across or channels, tile["BLOCK_C"]))
    _snake_kernel[grid](x, x.stride(0), x.stride(1), alpha, inverse, bias if bias is not None else y, y, y.stride(0),
                        y.stride(1), channels, length, snake, float(slope), pad, HAS_BIAS=bias is not None,
                        FAST_SIN=x.is_cuda, CHANNELS_LAST=across, **tile)
    return y


def add_residual(conv: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor, scale: float = 1.0,
                 into: torch.Tensor | None = None) -> torch.Tensor:
    """scale (conv + bias + residual), one pass: a residual unit's end after a convolution made without its bias.
    conv: (batch, channels, samples), contiguous, overwritten with the result and returned; or, with `into` (as
    `snake_conv`'s), the result added to that in place and it returned."""
    rows, channels, length = conv.shape
    if residual.stride(2) != 1:
        residual = residual.contiguous()
    y = into if into is not None else conv
    tile = _tile(ELEMENTWISE_TILE, channels)
    grid = (triton.cdiv(length, tile["BLOCK_T"]), rows, triton.cdiv(channels, tile["BLOCK_C"]))
    _residual_kernel[grid](conv, bias, residual, residual.stride(0), residual.stride(1), y, channels, length,
                           float(scale), ACCUMULATE=into is not None, **tile)
    return y


def upsample(x: torch.Tensor, alpha: torch.Tensor | None, inverse: torch.Tensor | None, snake: int, slope: float,
             weight: torch.Tensor, bias: torch.Tensor, stride: int, left: int, right: int,
             tiles: dict | None = None) -> torch.Tensor:
    """conv_transpose1d(act(x), weight, bias, stride, groups=out channels)[..., left : -right], act as `activate`'s,
    as one kernel: NeMo's up-sampling layer, each output channel made from a group of in / out input channels.
    x: (batch, in, samples), its samples contiguous; weight (in, 1, taps); the result (batch, out, (samples - 1)
    stride + taps - left - right), x's dtype, its channels `aligned` (the residual units' input). cuDNN's grouped
    transposed convolution took 16% of the decoder's time on the book's mix (bench/README.md, "Twelfth session"); this
    is a gather, bound by memory.
    tiles: BLOCK_T (input samples a program takes), BLOCK_C, num_warps, in place of UPSAMPLE_TILE's."""
    rows, c_in, length = x.shape
    c_out, taps = bias.shape[0], weight.shape[2]
    if weight.shape[1] != 1 or c_in % c_out:
        raise ValueError(f"upsample: weight {tuple(weight.shape)} is not one output channel a group of {c_in}")
    if x.stride(2) != 1:
        x = x.contiguous()
    weight = weight.contiguous()
    out_len = (length - 1) * stride + taps - left - right
    y = aligned_empty(rows, c_out, out_len, x)
    if alpha is None:  # leaky ReLU only: any tensor stands in, none of it is read
        alpha = inverse = bias
    tile = _tile(UPSAMPLE_TILE, c_out, tiles)
    grid = (triton.cdiv(triton.cdiv(out_len + left, stride), tile["BLOCK_T"]), rows, triton.cdiv(c_out, tile["BLOCK_C"]))
    _upsample_kernel[grid](x, x.stride(0), x.stride(1), alpha, inverse, weight, bias, y, y.stride(0), y.stride(1),
                           c_out, length, out_len, snake, float(slope), left, FAST_SIN=x.is_cuda, STRIDE=stride,
                           TAPS=taps, IN_PER=c_in // c_out, BLOCK_J=tile["BLOCK_T"], BLOCK_C=tile["BLOCK_C"],
                           num_warps=tile["num_warps"])
    return y
