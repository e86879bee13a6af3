"""How busy the engines' slots stay, for orders of the bench book's chunks: a count, not a timing.

Each engine takes every Nth chunk of the order (as SpeechEngine.takes deals them) into a queue, and
keeps up to --slots sequences running; each step adds a token to every running sequence, and a chunk
ends after its planned tokens (random weights never stop early), when the next in its queue takes the
slot. The count ignores prefill and early stops, so it comes out a little above a GPU run's
`engine_steps` (render.json). Runs on any machine, in seconds.

    python bench/waves.py [--repeat 108] [--engines 3] [--slots 256]
"""
from __future__ import annotations

import argparse
import heapq
from pathlib import Path

from render_bench import ROOT, repeated  # bench/, beside this script

from renderer.book import Chunk, Voice
from renderer.read import read_book
from renderer.speech import kani
from renderer.speech.engine import ADMIT_TOGETHER, longest_first, to_admit, wave_order
from renderer.text.chunk import chunk_book


def engine_steps(queue: list[int], slots: int, together: int = 1) -> tuple[int, float, int]:
    """(steps, mean sequences running, steps that admit a sequence) for one engine's queue of token
    counts, handed to the engine `together` at a time once that many slots are free (or what is left).
    A step that admits one runs its prompt's prefill beside the others' decoding."""
    running: list[int] = []  # the step each running sequence ends at
    step = busy = i = admitting = 0
    while i < len(queue) or running:
        if admit := to_admit(slots - len(running), slots, len(queue) - i, together):  # as _Stream.admit
            admitting += 1
            for tokens in queue[i : i + admit]:
                heapq.heappush(running, step + tokens)
            i += admit
        busy += len(running) * (running[0] - step)
        step = running[0]
        while running and running[0] == step:
            heapq.heappop(running)
    return step, busy / max(step, 1), admitting


def part_filled_last_wave(chunks: list[Chunk], wave: int) -> list[Chunk]:
    """wave_order's first version (2026-11-30): waves from the book's start, the last part-filled."""
    return [c for k in range(0, len(chunks), wave) for c in longest_first(chunks[k : k + wave])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=ROOT / "samples" / "moby-dick-opening.md")
    parser.add_argument("--repeat", type=int, default=108, help="the book this many times over (108: about 10 hours)")
    parser.add_argument("--engines", type=int, default=3)
    parser.add_argument("--slots", type=int, default=256, help="sequences an engine runs at once (--max-seqs)")
    args = parser.parse_args()

    chunks = chunk_book(repeated(read_book(args.book), args.repeat), Voice("en", "andrew", "model", "codec"))
    wave = args.engines * args.slots
    longest = longest_first(chunks)
    orders = {  # name: (order, chunks handed over together)
        "the book's order": (chunks, 1),
        "the whole book longest first": (longest, 1),
        f"the whole book longest first, {ADMIT_TOGETHER} together": (longest, ADMIT_TOGETHER),
        f"waves of {wave}, the last part-filled": (part_filled_last_wave(chunks, wave), 1),
        f"waves of {wave}, the last full (wave_order)": (wave_order(chunks, wave), 1),
        f"waves of {wave}, the last full, {ADMIT_TOGETHER} together (the renderer's)": (wave_order(chunks, wave),
                                                                                        ADMIT_TOGETHER),
    }
    print(f"{len(chunks)} chunks, {sum(c.seconds for c in chunks) / 3600:.1f} h planned, "
          f"{args.engines} engines x {args.slots} slots\n")
    print("| order | steps (the slowest engine's) | mean sequences running | steps admitting a sequence (its engine's) |")
    print("|---|---|---|---|")
    for name, (order, together) in orders.items():
        counts = [engine_steps([kani.max_new_tokens(c.seconds, 1.0) for c in order[k :: args.engines]], args.slots,
                               together)
                  for k in range(args.engines)]
        steps, _, admitting = max(counts)
        print(f"| {name} | {steps:,} | {sum(b for _, b, _ in counts) / len(counts):.0f} | {admitting:,} |")


if __name__ == "__main__":
    main()
