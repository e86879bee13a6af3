"""Where each process's CPU went, from the collapsed stacks `render_bench.py --py-spy` writes:
samples per process and thread, then the functions with the most samples, inclusive (anywhere on
the stack) and self (the innermost frame). py-spy samples only threads that are running, not waiting.

    python bench/py_spy_top.py RESULTS/py-spy.txt [--top 15]
"""
from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

from render_bench import CpuUse  # bench/, beside this script: the same names for the same processes

PROCESSES = re.compile(r'((?:process \d+:".*?";)+)')


def kind(process: str) -> str:
    """A process as render_bench's CpuUse names its kinds, with its pid."""
    pid = re.search(r"process (\d+)", process)
    kinds = (*CpuUse.KINDS, ("render_bench", CpuUse.DRIVER))
    name = next((label for key, label in kinds if key in process), "other")
    return f"{name} {pid.group(1) if pid else '?'}"


def read(path: Path) -> dict[tuple[str, str], list[tuple[list[str], int]]]:
    """(process kind, thread) -> [(frames outermost first, samples)]."""
    stacks: dict[tuple[str, str], list[tuple[list[str], int]]] = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        # --subprocesses names the process's ancestors first, the sampled one last (command lines
        # quoted: they may hold ";"), then the thread, then the frames outermost first.
        head = PROCESSES.match(body)
        processes = re.findall(r'process \d+:".*?";', head.group(1)) if head else []
        fields = body[head.end(1) if head else 0:].split(";")
        thread = fields[0] if fields[0].startswith("thread ") else ""
        frames = [f for f in fields[bool(thread):] if f]
        stacks[(kind(processes[-1] if processes else ""), thread)].append((frames, int(count)))
    return stacks


def function(frame: str) -> str:
    """A frame without its line number: `name (file)`."""
    return re.sub(r":\d+\)$", ")", frame)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    stacks = read(args.path)
    total = sum(n for group in stacks.values() for _, n in group)
    print(f"{total} samples in all")
    for (process, thread), group in sorted(stacks.items(), key=lambda kv: -sum(n for _, n in kv[1])):
        samples = sum(n for _, n in group)
        print(f"\n## {process}, {thread or 'all threads'}: {samples} samples ({100 * samples / total:.1f}%)")
        inclusive: collections.Counter[str] = collections.Counter()
        own: collections.Counter[str] = collections.Counter()
        for frames, n in group:
            for name in {function(f) for f in frames}:
                inclusive[name] += n
            if frames:
                own[function(frames[-1])] += n
        for title, counter in (("inclusive", inclusive), ("self", own)):
            print(f"{title}:")
            for name, n in counter.most_common(args.top):
                print(f"  {100 * n / samples:5.1f}%  {name}")


if __name__ == "__main__":
    main()
