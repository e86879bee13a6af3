"""The fused residual-unit kernel alone (renderer/codec_kernels.snake_conv) against the eager decoder's
same steps (half-snake, left padding, cuDNN's convolution), at each width the decoder fuses, over tile
sizes, warps and pipeline stages: which configuration, if any, beats eager at 108, 54 and 27 channels.
Also the activation apart (`snake_conv(apart=True)`: one activation kernel, then the convolution alone), and
the activation kernel before cuDNN's convolution (the decoder's `kernel_activations`). With `--what upsampling`,
each up-sampling stage too: the activation and cuDNN's grouped transposed convolution, eager, against
`codec_kernels.upsample` (the decoder's `kernel_upsampling`) at each of ELEMENTWISE_TILES; with `--what activation`,
the activation kernel alone (`codec_kernels.activate`) against torch's ops at each stage's shape, at each tile.

    python bench/snake_conv_bench.py [--rows 16] [--frames 150] [--repeat 5] [--apart fused,apart]
                                     [--what units,upsampling,activation]

Random weights of the decoder's shapes (7 taps, dilation 3, as the middle unit of a chain), bf16, one
batch of `rows` takes of `frames` frames at each stage's length. Appends rows to
bench/results/snake_conv.json and rewrites bench/results/snake_conv.md.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
from pathlib import Path

from codec_bench import median_seconds  # bench/, beside this script
from results_table import append_rows, device_name

ROOT = Path(__file__).resolve().parents[1]
# The fused stages of the nano codec's decoder: channels, and samples a frame after that stage's up-sampling
STAGES = ((108, 294), (54, 882), (27, 1764))
# Each up-sampling stage: its output channels (from twice as many) and stride, and samples a frame before it
UPSAMPLING = ((432, 7, 1), (216, 7, 7), (108, 6, 49), (54, 3, 294), (27, 2, 882))
TAPS, DILATION, SLOPE = 7, 3, 0.01
COLUMNS = ("date", "gpu", "channels", "batch", "how", "ms", "tflops", "gb_s", "x_eager")
# Tiles swept for the elementwise kernels (up-sampling, activation): samples, channels, warps. Each thread holds
# BLOCK_T x BLOCK_C / (32 warps) of a tile: at 8 or more, the up-sampling kernel took 255 registers (cuobjdump).
ELEMENTWISE_TILES = ((256, 32, 4), (32, 8, 4), (64, 8, 4), (128, 4, 4), (64, 4, 2), (256, 4, 8), (128, 8, 4),
                     (512, 8, 8), (1024, 4, 8))


def configurations(channels: int, apart: bool):
    """None (snake_conv's own choice), then each of the tiles swept; fewer activated apart (`--apart`)."""
    yield None
    if apart:
        for block_t, warps in itertools.product((128, 256), (4, 8)):
            yield {"BLOCK_T": block_t, "num_warps": warps}
        return
    widths = (32, 64, 128) if channels > 64 else (32, 64)
    for block_t, block_c, warps, stages in itertools.product((64, 128, 256), widths, (4, 8), (3,)):
        yield {"BLOCK_T": block_t, "BLOCK_CI": block_c, "BLOCK_CO": block_c, "num_warps": warps, "num_stages": stages}
    for stages in (1, 2, 4):
        yield {"num_stages": stages}


def one_stage(channels: int, per_frame: int, args, gpu: str, date: str) -> list[dict]:
    """Eager, then the fused kernel in each configuration, at one stage's width and length: a row each."""
    import torch
    import torch.nn.functional as F
    from triton.runtime.errors import OutOfResources

    from renderer.codec_kernels import activate, padded_taps, snake_conv, to_channels_last

    length, snake = args.frames * per_frame, channels // 2
    x = torch.randn(args.rows, channels, length, device="cuda", dtype=torch.bfloat16)
    alpha = torch.rand(snake, device="cuda", dtype=torch.bfloat16) + 0.5
    inverse = (alpha + 1e-9).reciprocal()
    weight = torch.randn(channels, channels, TAPS, device="cuda", dtype=torch.bfloat16) / (channels * TAPS) ** 0.5
    taps = weight.permute(2, 0, 1).contiguous()
    bias = torch.randn(channels, device="cuda", dtype=torch.bfloat16)
    flop = 2 * args.rows * length * channels * channels * TAPS
    batch = f"{args.rows} x {args.frames} frames ({length} samples)"

    def row(how: str, seconds: float, base: float) -> dict:
        return {"date": date, "gpu": gpu, "channels": channels, "batch": batch, "how": how,
                "ms": round(seconds * 1e3, 2), "tflops": round(flop / seconds / 1e12, 1),
                "x_eager": round(base / seconds, 2)}

    def eager():
        act = eager_activation(x, alpha, inverse, snake)
        return F.conv1d(F.pad(act, ((TAPS - 1) * DILATION, 0)), weight, bias, dilation=DILATION)

    def activated():  # the decoder's kernel_activations: one kernel activating and padding, then cuDNN
        padded = activate(x, alpha, inverse, snake, SLOPE, pad=(TAPS - 1) * DILATION)
        return F.conv1d(padded, weight, bias, dilation=DILATION)

    eager()
    base, want = median_seconds(eager, args.repeat)
    rows = [row("eager", base, base)]
    print(rows[-1], flush=True)
    activated()
    seconds, got = median_seconds(activated, args.repeat)
    rows.append(row("activation kernel, then cuDNN", seconds, base))
    print(rows[-1], f"relative error {float((got.float() - want.float()).norm() / want.float().norm()):.1e}", flush=True)
    padded, conv_only = padded_taps(taps), F.conv1d(F.pad(x, ((TAPS - 1) * DILATION, 0)), weight, bias,
                                                    dilation=DILATION)
    across = to_channels_last(x)  # as the descriptors take it
    for way, tiles in [(each, tiles) for each in args.apart for tiles in configurations(channels, each != "fused")]:
        def fused(tiles=tiles, way=way):
            if way.startswith("conv"):  # the convolution kernel alone, on x as if activated
                return snake_conv(across if way == "conv-tma" else x, None, None, 0, SLOPE, padded, bias, DILATION,
                                  tiles=tiles, activated=True, tma=way == "conv-tma")
            return snake_conv(x, alpha, inverse, snake, SLOPE, padded if way == "tma" else taps, bias, DILATION,
                              tiles=tiles, apart=way != "fused", tma=way == "tma")

        try:
            got = fused()
        except OutOfResources as err:  # a tile too large for the shared memory: the sweep goes on
            print(f"{channels} channels, {tiles}: {str(err).splitlines()[0]}", flush=True)
            continue
        against = conv_only if way.startswith("conv") else want
        error = float((got.float() - against.float()).norm() / against.float().norm())
        seconds, _ = median_seconds(fused, args.repeat)
        how = f"{way} " + (", ".join(f"{k}={v}" for k, v in tiles.items()) if tiles else "at its own tiles")
        rows.append(row(how, seconds, base))
        print(rows[-1], f"relative error {error:.1e}", flush=True)
    return rows


def tiles_of(each: tuple) -> dict:
    return dict(zip(("BLOCK_T", "BLOCK_C", "num_warps"), each, strict=True))


def swept(label: str, eager, kernel, moved: int, flop: int, repeat: int, base_row: dict) -> list[dict]:
    """eager, then kernel(tiles) at each of ELEMENTWISE_TILES: a row each, with its bandwidth (moved bytes)."""
    from triton.runtime.errors import OutOfResources

    eager()
    base, want = median_seconds(eager, repeat)
    rows = []

    def row(how, took):
        rows.append({**base_row, "how": how, "ms": round(took * 1e3, 3), "tflops": round(flop / took / 1e12, 2),
                     "gb_s": round(moved / took / 1e9), "x_eager": round(base / took, 2)})

    row(f"{label}, eager", base)
    print(rows[-1], flush=True)
    for each in ELEMENTWISE_TILES:
        try:
            kernel(tiles_of(each))
        except OutOfResources as err:
            print(f"{label} {each}: {str(err).splitlines()[0]}", flush=True)
            continue
        seconds, got = median_seconds(lambda each=each: kernel(tiles_of(each)), repeat)
        row(f"{label} kernel, BLOCK_T={each[0]}, BLOCK_C={each[1]}, num_warps={each[2]}", seconds)
        error = float((got.float() - want.float()).norm() / want.float().norm())
        print(rows[-1], f"relative error {error:.1e}", flush=True)
    return rows


def eager_activation(x, alpha, inverse, snake):
    import torch
    import torch.nn.functional as F

    head = x[:, :snake]
    head = head + inverse[:, None] * torch.sin(alpha[:, None] * head).pow(2)
    return torch.cat([head, F.leaky_relu(x[:, snake:], SLOPE)], dim=1)


def upsampling(args, gpu: str, date: str) -> list[dict]:
    """Each up-sampling stage, eager (activation, grouped conv_transpose1d, trimmed), then as one kernel at each tile."""
    import torch
    import torch.nn.functional as F

    from renderer.codec_kernels import upsample

    rows = []
    for c_out, stride, per_frame in UPSAMPLING:
        c_in, length, snake = 2 * c_out, args.frames * per_frame, c_out
        x = torch.randn(args.rows, c_in, length, device="cuda", dtype=torch.bfloat16)
        alpha = torch.rand(snake, device="cuda", dtype=torch.bfloat16) + 0.5
        inverse = (alpha + 1e-9).reciprocal()
        weight = torch.randn(c_in, 1, 2 * stride, device="cuda", dtype=torch.bfloat16) / 2
        bias = torch.randn(c_out, device="cuda", dtype=torch.bfloat16)
        flop = 2 * args.rows * length * stride * c_out * 2 * 2  # each output: 2 inputs, 2 taps each
        moved = 2 * args.rows * length * (c_in + c_out * stride)  # bf16 in, once, and out
        batch = f"{args.rows} x {args.frames} frames ({length} samples in, {c_in} channels, stride {stride})"

        def eager(x=x, alpha=alpha, inverse=inverse, weight=weight, bias=bias, stride=stride, c_out=c_out, snake=snake):
            out = F.conv_transpose1d(eager_activation(x, alpha, inverse, snake), weight, bias, stride=stride,
                                     groups=c_out)
            return out[..., : out.shape[-1] - stride]

        def kernel(tiles, x=x, alpha=alpha, inverse=inverse, weight=weight, bias=bias, stride=stride, snake=snake):
            return upsample(x, alpha, inverse, snake, SLOPE, weight, bias, stride, 0, stride, tiles=tiles)

        rows += swept("up-sampling", eager, kernel, moved, flop, args.repeat,
                      {"date": date, "gpu": gpu, "channels": c_out, "batch": batch})
    return rows


def activations(args, gpu: str, date: str) -> list[dict]:
    """The activation and a convolution's padding (7 taps, dilation 3) at each stage's width and length, eager
    (torch's ops, then F.pad), then `activate` at each tile."""
    import torch
    import torch.nn.functional as F

    from renderer.codec_kernels import activate

    rows, pad = [], (TAPS - 1) * DILATION
    for channels, stride, per_frame in UPSAMPLING:  # the activations inside each stage, after its up-sampling
        length, snake = args.frames * per_frame * stride, channels // 2
        x = torch.randn(args.rows, channels, length, device="cuda", dtype=torch.bfloat16)
        alpha = torch.rand(snake, device="cuda", dtype=torch.bfloat16) + 0.5
        inverse = (alpha + 1e-9).reciprocal()
        batch = f"{args.rows} x {args.frames} frames ({length} samples)"

        def eager(x=x, alpha=alpha, inverse=inverse, snake=snake):
            return F.pad(eager_activation(x, alpha, inverse, snake), (pad, 0))

        def kernel(tiles, x=x, alpha=alpha, inverse=inverse, snake=snake):
            return activate(x, alpha, inverse, snake, SLOPE, pad, tiles=tiles)

        rows += swept("activation", eager, kernel, 2 * x.numel() * 2, 0, args.repeat,
                      {"date": date, "gpu": gpu, "channels": channels, "batch": batch})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--apart", default="fused,apart",
                        help="fused (the activation at each tap), apart (activated once, by a kernel of its own), tma "
                             "(apart, the convolution's tiles moved by descriptors), conv or conv-tma (the convolution "
                             "kernel alone, by pointers or by descriptors), comma-separated")
    parser.add_argument("--what", default="units,upsampling",
                        help="units (the residual units' halves), upsampling (the up-sampling stages), activation (the "
                             "activation kernel alone, each stage's shape), comma-separated")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.apart = args.apart.split(",")
    if unknown := set(args.apart) - {"fused", "apart", "tma", "conv", "conv-tma"}:
        parser.error(f"--apart: unknown {', '.join(sorted(unknown))}")

    import torch

    torch.manual_seed(0)
    gpu, date = device_name(), datetime.date.today().isoformat()
    what = args.what.split(",")
    rows = [row for channels, per_frame in STAGES for row in one_stage(channels, per_frame, args, gpu, date)
            ] if "units" in what else []
    rows += upsampling(args, gpu, date) if "upsampling" in what else []
    rows += activations(args, gpu, date) if "activation" in what else []
    header = ("# The fused residual-unit kernel alone against eager\n\n"
              f"bench/snake_conv_bench.py: {TAPS} taps, dilation {DILATION}, bf16, random weights; x_eager > 1 is faster.")
    append_rows(rows, args.results / "snake_conv.json", args.results / "snake_conv.md", COLUMNS, header)


if __name__ == "__main__":
    main()
