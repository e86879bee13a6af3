"""Codec-stage benchmark: the project's Codec.decode alone, on a random-weight nano codec of the real
size, in batches of twelve-second takes (150 frames), at each precision, with NeMo's own decoder
module (as the renderer ran it before 2026-11-30) or ours, eager, cuDNN-tuned or compiled.

    python bench/codec_bench.py --codec /tmp/models/codec.nemo [--batches 16,64] [--repeat 5]
    python bench/codec_bench.py --codec /tmp/models/codec.nemo --new-shapes --cases bf16:eager,bf16:tuned

--new-shapes decodes batches of 24 shapes, as a render's come (3-13 takes of 6-12 s), each shape for
the first time and then again: what tuning or compiling costs for each new shape.

--shapes 96x25,16x150 decodes batches of those rows x frames, each after one warm-up call: what a
batch of short takes costs against one of long takes, frame for frame.

--mixed N decodes N takes of the bench book's lengths (1.5 to 12 s, shuffled) as the render hands them
over: each hand-over one batch padded to 2 s, as before 2026-12-01, and now, batched by length (with
--threads N, also on N threads at once).

--work prints what the decoder must compute and write for each frame of audio, by stage: a bound on
how fast any decoder of this architecture can run (bench/README.md, "Tenth session"). --stage-times 16x150
times each step of the eager decoder alone on such a batch, with the TFLOPS and GB/s that step attains:
which stages a faster kernel must take on.

Also reports how far bf16 output is from fp32 output for the same codes (signal-to-error ratio, dB).
Appends rows to bench/results/codec.json and rewrites bench/results/codec.md.
"""
from __future__ import annotations

import argparse
import datetime
import math
import re
import time
from functools import partial
from pathlib import Path

import numpy as np
from results_table import append_rows, device_name  # bench/, beside this script

from renderer import codec as codec_module
from renderer.codec import CODEBOOK_SIZE, FRAMES_PER_SECOND, NUM_CODEBOOKS, DecoderPlan, load_codec

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 150  # a twelve-second take
AS_THEY_CAME_FRAMES = 150 * 16  # before 2026-12-01: the render handed this many frames over, decoded as one batch
NEW_SHAPES = [(rows, frames) for rows in (3, 5, 7, 9, 11, 13) for frames in (75, 100, 125, 150)]
COLUMNS = ("date", "gpu", "precision", "how", "batch", "ms_per_batch", "x_realtime", "peak_gib", "first_call_s",
           "snr_vs_fp32_db")


def profile_decode(codec, batch: list[np.ndarray]) -> str:
    """The torch-profiler table of one decode (after a warm-up one), by GPU time."""
    from torch.profiler import ProfilerActivity, profile

    codec.decode(batch)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        codec.decode(batch)
    return profiler.key_averages().table(sort_by="self_device_time_total", row_limit=20, max_name_column_width=60)


def median_seconds(call, repeat: int) -> tuple[float, object]:
    """The median time of `repeat` calls of `call()`, each between GPU synchronizations, and the last
    call's result."""
    import torch

    times, made = [], None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        begun = time.perf_counter()
        made = call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - begun)
    return float(np.median(times)), made


def counting_work(decoder, frames: int, key) -> tuple[dict, list]:
    """Forward hooks on the plain decoder's layers that add up, per frame of the `frames` decoded (all
    rows), what each computes and writes, by key(layer output): [GFLOP, elements written, convolutions,
    channels]. A convolution's multiply-adds are counted from its shapes (2 FLOPs each); every layer's
    output is counted as written. Returns the totals and the hooks (remove them when done)."""
    work: dict = {}

    def count(module, inputs, out):
        x, name = inputs[0], type(module).__name__
        sums = work.setdefault(key(out), [0.0, 0.0, 0, out.shape[1]])
        sums[1] += out.numel() / frames
        if name in ("Conv", "UpSample"):  # a weight holds a multiply-add for each position it is applied at
            positions = out.shape[-1] if name == "Conv" else x.shape[-1]
            sums[0] += 2 * module.weight.numel() * x.shape[0] * positions / frames / 1e9
            sums[2] += 1

    hooks = [m.register_forward_hook(count) for m in decoder.modules()
             if type(m).__name__ in ("Conv", "UpSample", "Activation")]
    return work, hooks


def work_by_stage(codec, frames: int = FRAMES) -> dict[int, list]:
    """The plain decoder's arithmetic and tensor traffic for one take, per frame of audio, by stage (keyed
    by the stage's samples a frame): counting_work's sums. Runs anywhere: the counts do not depend on the
    device."""
    work, hooks = counting_work(codec.decoder, frames, lambda out: out.shape[-1] // frames)
    try:
        codec.decode([np.zeros((NUM_CODEBOOKS, frames), np.int64)])
    finally:
        for hook in hooks:
            hook.remove()
    return work


def stage_times(codec, rows: int, frames: int, repeat: int) -> list[dict]:
    """Each step of the plain decoder timed on its own (the median of `repeat`, after a warm-up), for one
    batch of `rows` takes of `frames`: the dequantizer, the first convolution, each upsampling stage, the
    last convolution. Beside each, what it computes and writes (counting_work, on the eager decoder: a
    fused one's kernels are not layers) and so what it attains. On a GPU each step is timed between
    synchronizations: its own kernels, none overlapped, and no counting hooks."""
    import torch

    tokens = torch.as_tensor(np.random.default_rng(0).integers(0, CODEBOOK_SIZE, (rows, NUM_CODEBOOKS, frames)))
    lengths = torch.full((rows,), frames)

    def steps(decoder) -> list:
        return ([("dequantize", lambda _: codec.model.dequantize(tokens=tokens.to(codec.device),
                                                                 tokens_len=lengths.to(codec.device))),
                 ("first convolution", lambda x: decoder.pre(decoder.enter(x)))]
                + [(f"stage {k + 1}", lambda x, k=k: decoder.stage(x, k)) for k in range(len(decoder.stages))]
                + [("last convolution", decoder.leave)])

    counted = codec_module._plain_decoder(codec.model.audio_decoder)  # its layers are modules: the hooks see each
    current = [""]
    work, hooks = counting_work(counted, rows * frames, lambda out: current[0])
    out, x = [], None
    with torch.inference_mode():
        try:
            for name, step in steps(counted):
                current[0] = name
                x = step(x)
        finally:
            for hook in hooks:
                hook.remove()
        for name, step in steps(codec.decoder):
            step(x)  # warm-up
            seconds, x = median_seconds(partial(step, x), repeat)
            gflop, written = work.get(name, [0.0, 0.0])[:2]
            out.append({"step": name, "ms": round(1000 * seconds, 2), "gflop_per_frame": float(f"{gflop:.4g}"),
                        "mb_written_per_frame": float(f"{2 * written / 1e6:.4g}"),
                        "tflops": round(gflop * rows * frames / seconds / 1e3, 1),
                        "gb_per_s_written": round(2 * written * rows * frames / seconds / 1e9, 1)})
    total = sum(row["ms"] for row in out)
    for row in out:
        row["share"] = round(row["ms"] / total, 3)
    return out


def work_table(stages: dict[int, list]) -> str:
    """work_by_stage as a Markdown table, with the whole decoder's sums last."""
    lines = ["| samples a frame | channels | convolutions | GFLOP a frame | MB written a frame (bf16) |",
             "|---|---|---|---|---|"]
    for samples, (gflop, written, convs, channels) in sorted(stages.items()):
        lines.append(f"| {samples} | {channels} | {convs} | {gflop:.3f} | {2 * written / 1e6:.2f} |")
    gflop, written, convs = (sum(stage[k] for stage in stages.values()) for k in range(3))
    lines.append(f"| all | | {convs} | {gflop:.3f} | {2 * written / 1e6:.2f} |")
    return "\n".join(lines)


def nemo_decoder(module):
    """NeMo's CausalHiFiGANDecoder called as Codec calls its own decoder: latents in, audio out
    (every take of a batch here is whole, so the lengths are the batch's)."""
    import torch

    def decode(latents):
        lengths = torch.full((latents.shape[0],), latents.shape[2], device=latents.device)
        return module(inputs=latents, input_len=lengths)[0]

    return decode


def load_case(path: str, case: str):
    """The codec as a case names it, PRECISION:HOW. HOW: eager, tuned (cuDNN picks conv algorithms), compiled,
    fused (the residual units of at most FUSED_MOST_CHANNELS channels as Triton kernels; fusedN: of at most N;
    "-apart" after it: their activations as kernels of their own), or nemo (NeMo's own decoder module); "wide-"
    before it: channels-last, "wideN-": only the first N stages so; "act-" before HOW: the activations as Triton
    kernels (kernel_activations); "up-": the up-sampling as Triton kernels (kernel_upsampling); "fold-": the biases
    and the stages' means folded into the kernels (folded); "chain-": each fused unit's middle activated as its first
    convolution writes it (chained); "tma-": the fused units' convolution kernel moving its tiles by descriptors
    (tma), the units of at most TMA_MOST_CHANNELS channels fused; "tmaN-": of at most N."""
    precision, how = case.split(":")
    wide = re.match(r"wide(\d*)-", how)
    fused = re.search(r"fused(\d*)(-apart)?$", how)
    tma = re.match(r"tma(\d*)-", how)
    plan = DecoderPlan(wide_stages=int(wide[1]) if wide and wide[1] else 0, kernel_activations="act-" in how,
                       kernel_upsampling="up-" in how, folded="fold-" in how, chained="chain-" in how,
                       tma=bool(tma), tma_channels=int(tma[1]) if tma and tma[1] else codec_module.TMA_MOST_CHANNELS,
                       fused=bool(fused), fused_apart=bool(fused and fused[2]),
                       fused_channels=int(fused[1]) if fused and fused[1] else codec_module.FUSED_MOST_CHANNELS)
    codec = load_codec(path, precision=precision, tune_convs=how.endswith("tuned"), compile=how.endswith("compiled"),
                       channels_last=bool(wide and not wide[1]), plan=plan)
    if how == "nemo":
        codec.decoder = nemo_decoder(codec.model.audio_decoder)
    return codec


def new_shapes(codec, rng) -> list[dict]:
    """Each of NEW_SHAPES decoded once (the first call of each shape), then all again: a row each."""
    import torch

    audio = sum(rows * frames for rows, frames in NEW_SHAPES) / FRAMES_PER_SECOND
    rows = []
    for when in ("first", "again"):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        begun = time.perf_counter()
        for size, frames in NEW_SHAPES:
            codec.decode([rng.integers(0, CODEBOOK_SIZE, (NUM_CODEBOOKS, frames)) for _ in range(size)])
        seconds = time.perf_counter() - begun
        rows.append({"batch": f"{len(NEW_SHAPES)} shapes, {when}",
                     "ms_per_batch": round(1000 * seconds / len(NEW_SHAPES), 1), "x_realtime": round(audio / seconds)})
    return rows


def shapes(codec, rng, given: str, repeat: int) -> list[dict]:
    """Batches of `given` shapes (ROWSxFRAMES, comma-separated), each decoded once to warm up and then
    `repeat` times: a row each, with the median."""
    out = []
    for shape in given.split(","):
        size, frames = (int(n) for n in shape.split("x"))
        batch = [rng.integers(0, CODEBOOK_SIZE, (NUM_CODEBOOKS, frames)) for _ in range(size)]
        codec.decode(batch)
        seconds, _ = median_seconds(partial(codec.decode, batch), repeat)
        out.append({"batch": f"{size} x {frames} frames", "ms_per_batch": round(1000 * seconds, 1),
                    "x_realtime": round(size * frames / FRAMES_PER_SECOND / seconds)})
        print(out[-1], flush=True)
    return out


def decode_as_they_came() -> None:
    """From now on, in this process, decode as before 2026-12-01, to compare on one machine: the render hands
    over AS_THEY_CAME_FRAMES at a time, and each hand-over is one batch, padded to a multiple of 2 s. Sets the
    globals that Codec.decode and the render loop read."""
    from renderer import render

    codec_module.PAD_FRAMES = 25
    codec_module.batches_by_frames = lambda lengths, **_: [list(range(len(lengths)))]
    render.DECODE_TOGETHER_FRAMES = AS_THEY_CAME_FRAMES


def book_lengths(count: int, rng) -> list[int]:
    """Frames of `count` takes of the bench book's chunks, each at its planned length (as render_bench
    runs them), the book over and over, shuffled: a render's mix of lengths."""
    from renderer.read import read_book
    from renderer.speech.voices import resolve_voice
    from renderer.text.chunk import chunk_book

    chunks = chunk_book(read_book(ROOT / "samples" / "moby-dick-opening.md"), resolve_voice("en"))
    return rng.permutation(np.resize([math.ceil(c.seconds * FRAMES_PER_SECOND) for c in chunks], count)).tolist()


def handovers(takes: list[np.ndarray], frames: int) -> list[list[np.ndarray]]:
    """`takes` as the render hands them to the codec: in order, a hand-over once it holds `frames` frames or more."""
    out, at = [[]], 0
    for take in takes:
        if at >= frames:
            out.append([])
            at = 0
        out[-1].append(take)
        at += take.shape[1]
    return out


def mixed(codec, rng, count: int, threads: int = 1) -> list[dict]:
    """`count` takes of the book's lengths, decoded in the render's hand-overs, the old way and now
    (and with `threads` > 1, now on that many threads at once, as EngineOptions.decode_threads): a row
    each, after one pass of each to warm up."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from renderer.render import DECODE_TOGETHER_FRAMES

    lengths = book_lengths(count, rng)
    takes = [rng.integers(0, CODEBOOK_SIZE, (NUM_CODEBOOKS, n)) for n in lengths]

    def as_they_came(batch):  # before 2026-12-01: each hand-over one batch, padded to a multiple of 2 s
        kept, codec_module.PAD_FRAMES = codec_module.PAD_FRAMES, 25
        try:
            return codec._decode_rows(batch)
        finally:
            codec_module.PAD_FRAMES = kept

    pool = ThreadPoolExecutor(max_workers=threads)

    def one_by_one(decode):
        return lambda given: [decode(batch) for batch in given]

    ways = {"as they came": (one_by_one(as_they_came), handovers(takes, AS_THEY_CAME_FRAMES)),
            "by length": (one_by_one(codec.decode), handovers(takes, DECODE_TOGETHER_FRAMES))}
    if threads > 1:
        ways[f"by length, {threads} threads"] = (lambda given: list(pool.map(codec.decode, given)),
                                                 handovers(takes, DECODE_TOGETHER_FRAMES))
    rows = []
    for timed in (False, True):
        for how, (decode, given) in ways.items():
            before = codec.frames, codec.padded
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            begun = time.perf_counter()
            decode(given)
            seconds = time.perf_counter() - begun
            fill = (codec.frames - before[0]) / (codec.padded - before[1])
            if timed:
                rows.append({"batch": f"{count} takes of the book's lengths, {how}, fill {fill:.2f}",
                             "ms_per_batch": round(1000 * seconds / len(given), 1),
                             "x_realtime": round(sum(lengths) / FRAMES_PER_SECOND / seconds)})
    pool.shutdown()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codec", required=True)
    parser.add_argument("--batches", default="16,64")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cases", default=None, help="PRECISION:HOW,... (load_case; default: "
                        "fp32:eager,fp32:nemo,bf16:nemo,bf16:eager,bf16:tuned,bf16:compiled)")
    parser.add_argument("--new-shapes", action="store_true", help="batches of 24 new shapes, as a render's come")
    parser.add_argument("--mixed", type=int, default=0, metavar="N",
                        help="N takes of the bench book's lengths, in the render's hand-overs: the old way and now")
    parser.add_argument("--threads", type=int, default=1, help="with --mixed: also decode by length on this many threads")
    parser.add_argument("--shapes", default="", metavar="RxF,...", help="batches of R takes of F frames each")
    parser.add_argument("--profile", action="store_true",
                        help="print where one batch spends its GPU time: the first of --shapes (16x150 if none), for "
                             "each of --cases (bf16:eager if none)")
    parser.add_argument("--channels-last", action="store_true",
                        help="with --profile and no --cases: the channels-last decoder (bf16:wide-eager)")
    parser.add_argument("--stage-times", default="", metavar="RxF",
                        help="time each step of the decoder on its own for one batch of R takes of F frames, for "
                             "each of --cases (bf16:eager if none; eager or fused ones), with its FLOPs and bytes")
    parser.add_argument("--work", action="store_true",
                        help="print the decoder's FLOPs and bytes written per frame, by stage (any device)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.cases_given = args.cases is not None
    args.cases = args.cases or "fp32:eager,fp32:nemo,bf16:nemo,bf16:eager,bf16:tuned,bf16:compiled"
    import torch

    gpu = torch.cuda.is_available()
    rng = np.random.default_rng(0)
    sizes = [int(b) for b in args.batches.split(",")]
    takes = [rng.integers(0, CODEBOOK_SIZE, (NUM_CODEBOOKS, FRAMES)) for _ in range(max(sizes))]
    if args.stage_times:
        size, frames = (int(n) for n in args.stage_times.split("x"))
        for case in args.cases.split(",") if args.cases_given else ["bf16:eager"]:
            if not case.endswith("eager") and "fused" not in case:
                parser.error(f"--stage-times: {case} is neither eager nor fused; compiled, it runs whole")
            rows = stage_times(load_case(args.codec, case), size, frames, args.repeat)
            print(f"## {case}, {size} x {frames} frames, each step alone\n" + "\n".join(map(str, rows)), flush=True)
        return
    if args.work:
        print(work_table(work_by_stage(load_codec(args.codec))))
        return
    if args.profile:  # each case's profile of one batch: the first of --shapes, or 16 twelve-second takes
        size, frames = (int(n) for n in (args.shapes.split(",")[0] if args.shapes else f"16x{FRAMES}").split("x"))
        batch = [rng.integers(0, CODEBOOK_SIZE, (NUM_CODEBOOKS, frames)) for _ in range(size)]
        cases = args.cases.split(",") if args.cases_given else [f"bf16:{'wide-' if args.channels_last else ''}eager"]
        for case in cases:
            table = profile_decode(load_case(args.codec, case), batch)
            print(f"## {case}, {size} x {frames} frames\n{table}", flush=True)
        return
    reference: dict[int, list[np.ndarray]] = {}
    rows = []
    for case in args.cases.split(","):
        precision, how = case.split(":")
        codec = load_case(args.codec, case)
        case_columns = {"date": datetime.date.today().isoformat(), "gpu": device_name(), "precision": precision,
                        "how": how}
        if args.new_shapes:
            rows += [{**case_columns, **row} for row in new_shapes(codec, rng)]
            print(rows[-2:], flush=True)
        if args.mixed:
            made = [{**case_columns, **row} for row in mixed(codec, rng, args.mixed, args.threads)]
            rows += made
            print(made, flush=True)
        if args.shapes:
            rows += [{**case_columns, **row} for row in shapes(codec, rng, args.shapes, args.repeat)]
        for size in [] if args.new_shapes or args.mixed or args.shapes else sizes:
            batch = takes[:size]
            if gpu:
                torch.cuda.reset_peak_memory_stats()
            begun = time.perf_counter()
            audio = codec.decode(batch)  # the first call compiles, when compiled
            first = time.perf_counter() - begun
            seconds, _ = median_seconds(partial(codec.decode, batch), args.repeat)
            if precision == "fp32" and how == "eager":
                reference[size] = audio
            snr = ""
            if size in reference and case != "fp32:eager":
                signal = sum(float(np.sum(r.astype(np.float64) ** 2)) for r in reference[size])
                error = sum(float(np.sum((r.astype(np.float64) - a) ** 2)) for r, a in zip(reference[size], audio, strict=True))
                snr = round(10 * np.log10(signal / max(error, 1e-30)), 1)
            peak = round(torch.cuda.max_memory_allocated() / 2**30, 1) if gpu else ""
            rows.append({**case_columns, "batch": size, "ms_per_batch": round(1000 * seconds, 1),
                         "x_realtime": round(size * FRAMES / FRAMES_PER_SECOND / seconds),
                         "peak_gib": peak, "first_call_s": round(first, 1), "snr_vs_fp32_db": snr})
            print(rows[-1], flush=True)
        del codec
        if gpu:
            torch.cuda.empty_cache()
    append_rows(rows, args.results / "codec.json", args.results / "codec.md", COLUMNS,
                "# Codec-stage benchmark (bench/codec_bench.py)\n\nThe project's Codec.decode on a random-weight nano "
                "codec of the real size, batches of 12-s takes (150 frames); x realtime = seconds of audio decoded per "
                "second; snr_vs_fp32_db = how close bf16's audio is to fp32's for the same codes.")


if __name__ == "__main__":
    main()
