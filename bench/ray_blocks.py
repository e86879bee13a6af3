"""Ray Data's own throughput for the render's pipeline shape, with no engine and no codec: a generator
stage yields a book's takes in groups of 16 (codes of a 8.5 s take), a second stage adds each take's
audio (float32, 22,050 Hz), and this process counts what arrives. With --per-take each take is a row
(so, at the render's target_max_block_size of 1 byte, a block); else each group is one row.

    python bench/ray_blocks.py [--per-take] [--takes 780] [--audio-samples 187000]

Prints takes a second from the first arrival to the last (bench/README.md, "Ray").
"""
from __future__ import annotations

import argparse
import time

import numpy as np

GROUP = 16
CODES_BYTES = 4 * 106 * 2  # 8.5 s of codes, int16


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-take", action="store_true", help="one row per take, not per group")
    parser.add_argument("--takes", type=int, default=780)
    parser.add_argument("--audio-samples", type=int, default=187_000)
    args = parser.parse_args()
    samples, per_take = args.audio_samples, args.per_take

    import ray

    class Generate:
        def __call__(self, batch):
            ids = batch["id"]
            for k in range(0, len(ids), GROUP):
                group = ids[k : k + GROUP]
                if per_take:
                    yield {"n": np.ones(len(group), np.int64), "codes": np.array([bytes(CODES_BYTES)] * len(group), dtype=object)}
                else:
                    yield {"n": np.array([len(group)]), "codes": np.array([bytes(CODES_BYTES * len(group))], dtype=object)}

    class Decode:
        def __call__(self, batch):
            batch["audio"] = np.array([np.zeros(samples * int(n), np.float32).tobytes() for n in batch["n"]], dtype=object)
            return batch

    ray.init(include_dashboard=False, logging_level="ERROR")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.target_max_block_size = 1  # as renderer/cluster.py sets it
    try:
        dataset = (ray.data.from_items([{"id": i} for i in range(args.takes)])
                   .map_batches(Generate, batch_size=args.takes, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.5)
                   .map_batches(Decode, batch_size=GROUP * 2 if per_take else 2, compute=ray.data.ActorPoolStrategy(size=1),
                                num_cpus=0.5))
        first, got = None, 0
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            first = first or time.time()
            got += int(batch["n"].sum())
        seconds = time.time() - first
    finally:
        ray.shutdown()
    print(f"{'one row per take' if per_take else f'one row per group of {GROUP}'}: {got} takes in {seconds:.1f} s, "
          f"{got / seconds:.0f} takes a second")


if __name__ == "__main__":
    main()
