"""Where the book's mix of take lengths spends its decode time (on the GPU machine; prints, writes nothing).

    python bench/mix_profile.py --codec /tmp/models/codec.nemo --cases bf16:eager,bf16:wide1-act-fused-apart

For each case: the batches `Codec.decode` makes of the render's hand-overs (rows x padded frames), each
batch timed alone (synchronised), then one pass under the torch profiler: the wall time against the
GPU's kernel time, the kernels and host calls that took most, and cuDNN's kernels by the convolution (input and
weight shapes) that ran them.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch
from codec_bench import book_lengths, handovers, load_case  # bench/, beside this script

from renderer.codec import CODEBOOK_SIZE, FRAMES_PER_SECOND, NUM_CODEBOOKS, batches_by_frames
from renderer.render import DECODE_TOGETHER_FRAMES


def cudnn_kernels(events, most: int = 12) -> list[str]:
    """cuDNN's GPU kernels under each of its convolution calls among profiler `events` (record_shapes on), summed
    by kernel and the call's input and weight shapes, the costliest first: a line each."""
    took = collections.defaultdict(lambda: [0.0, 0])

    def kernels(event):
        yield from event.kernels
        for child in event.cpu_children:
            yield from kernels(child)

    for event in events:
        if event.name in ("aten::cudnn_convolution", "aten::cudnn_convolution_transpose"):
            shapes = " by ".join(str(tuple(shape)) for shape in event.input_shapes[:2])
            for kernel in kernels(event):
                entry = took[(kernel.name[:70], shapes)]
                entry[0] += kernel.duration / 1000
                entry[1] += 1
    costliest = sorted(took.items(), key=lambda item: -item[1][0])[:most]
    return [f"    {ms:.2f} ms, {calls} calls: {name} on {shapes}" for (name, shapes), (ms, calls) in costliest]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codec", required=True)
    parser.add_argument("--cases", default="bf16:eager")
    parser.add_argument("--takes", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    lengths = book_lengths(args.takes, rng)
    takes = [rng.integers(0, CODEBOOK_SIZE, (NUM_CODEBOOKS, n)) for n in lengths]
    given = handovers(takes, DECODE_TOGETHER_FRAMES)
    audio_s = sum(lengths) / FRAMES_PER_SECOND
    on_gpu = torch.cuda.is_available()
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if on_gpu else [])
    for case in args.cases.split(","):
        codec = load_case(args.codec, case)
        for batch in given:
            codec.decode(batch)  # warm-up
        shapes = collections.Counter()
        alone = []
        for batch in given:
            for part in batches_by_frames([t.shape[1] for t in batch], rows_for=codec.rows_for):
                rows = [batch[i] for i in part]
                sync()
                begun = time.perf_counter()
                codec._decode_rows(rows)
                sync()
                ms = 1000 * (time.perf_counter() - begun)
                width = max(r.shape[1] for r in rows)
                shapes[(len(rows), width)] += 1
                alone.append((len(rows), width, ms))
        total = sum(ms for *_, ms in alone)
        print(f"## {case}: {len(alone)} batches, each alone {total:.0f} ms, {audio_s / total * 1000:.0f}x")
        by_rows = collections.defaultdict(list)
        for rows, width, ms in alone:
            by_rows[min(rows, 32) // 4 * 4].append((rows * width, ms))
        for key in sorted(by_rows):
            frames = sum(f for f, _ in by_rows[key])
            ms = sum(m for _, m in by_rows[key])
            print(f"  rows {key}-{key + 3}: {len(by_rows[key])} batches, {frames} frames, {ms:.0f} ms, "
                  f"{ms / len(by_rows[key]):.1f} ms each, {1000 * ms / frames:.1f} us a frame")
        print("  the slowest a frame (rows x padded frames: ms, us a frame):")
        slowest = sorted(alone, key=lambda a: -a[2] / (a[0] * a[1]))
        for rows, width, ms in slowest[:6]:
            print(f"    {rows} x {width}: {ms:.1f} ms, {1000 * ms / (rows * width):.1f} us")
        rows, width, _ = slowest[0]
        batch = [rng.integers(0, CODEBOOK_SIZE, (NUM_CODEBOOKS, width)) for _ in range(rows)]
        codec._decode_rows(batch)
        with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
            codec._decode_rows(batch)
        print(f"  the slowest shape, {rows} x {width}, by input shape:")
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_device_time_total", row_limit=8,
                                                                 max_name_column_width=40, max_shapes_column_width=80))
        sync()
        with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
            begun = time.perf_counter()
            for batch in given:
                codec.decode(batch)
            sync()
            wall = time.perf_counter() - begun
        events = prof.key_averages()
        gpu = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / 1e6
        print(f"  profiled pass: wall {wall:.2f} s, GPU kernels {gpu:.2f} s ({gpu / wall:.0%} busy)")
        print(events.table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=60))
        print("  cuDNN's kernels by the convolution that ran them (input by weight shape):")
        print("\n".join(cudnn_kernels(prof.events())) or "    none (no GPU kernels profiled)")


if __name__ == "__main__":
    main()
