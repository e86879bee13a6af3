"""Speech-stage benchmark: the project's SpeechEngine alone (no codec, no files), on a random-weight
model of kani-tts-400m's real size. Random weights rarely say END_OF_SPEECH, so nearly every chunk
runs to its planned length: the numbers measure speed, not speech.

    python bench/speech_bench.py --model /tmp/models/kani --case NAME [--sampler codes|vllm]
        [--max-seqs 256] [--no-async] [--no-quantize] [--chunks 512] [--seconds 10]
        [--one-at-a-time 4] [--profile-steps 20] [--gpu-memory 0.5]

--one-at-a-time N: also render N chunks one request at a time, as the KaniTTS vLLM server does.
--profile-steps N: run the engine in this process and print torch-profiler tables for N steps
taken in the middle of the run (no throughput row then: profiling slows the steps).
Appends rows to bench/results/speech.json and rewrites bench/results/speech.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

from results_table import append_rows, device_name  # bench/, beside this script

from renderer.book import Chunk, Voice
from renderer.speech.engine import EngineOptions, SpeechEngine
from renderer.speech.kani import TOKENS_PER_SECOND

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("date", "gpu", "vllm", "case", "quantize", "sampler", "async", "replicas", "engine_processes", "max_seqs", "chunks", "tokens",
           "engine_steps", "driver_cores", "driver_us_per_token",
           "engine_start_s", "generate_s", "ms_per_step_est", "tokens_per_s", "x_realtime")
TEXT = "the lamp was lit at dusk and it burned until the morning came over the quiet harbour while ships waited"
WORDS = TEXT.split()


def bench_chunks(model: str, count: int, seconds: float) -> list[Chunk]:
    """`count` chunks of distinct text, each planned at `seconds` of speech."""
    voice = Voice("en", "andrew", model, "unused")
    chunks = []
    for i in range(count):
        words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(int(seconds * 2.5))]
        chunks.append(Chunk(1, i, i, f"{i}: " + " ".join(words) + ".", voice, seconds=seconds))
    return chunks


def profile_steps(engine: SpeechEngine, chunks: list[Chunk], warm: int, steps: int) -> str:
    """Torch-profiler tables for `steps` engine steps after `warm` steps (the engine runs in this process)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if not engine.llms:
        raise SystemExit("--profile-steps profiles an engine run in this process: add --no-engine-processes")
    core = engine.llms[0].llm_engine
    original = core.step
    count = {"n": 0}
    sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
    profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    walls = []

    def step():
        count["n"] += 1
        if count["n"] == warm:
            sync()
            profiler.start()
        begun = time.perf_counter()
        out = original()
        if warm <= count["n"] < warm + steps:
            sync()
            walls.append(time.perf_counter() - begun)
        if count["n"] == warm + steps:
            profiler.stop()
        return out

    core.step = step
    for _ in engine.takes(chunks):
        pass
    core.step = original
    events = profiler.key_averages()
    cuda_total = sum(e.self_device_time_total for e in events) / 1000 / steps
    lines = [f"{steps} steps: wall {1000 * sum(walls) / len(walls):.1f} ms a step, GPU kernels {cuda_total:.1f} ms a step",
             events.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=70),
             events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=70)]
    return "\n".join(lines)


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The engine as the benchmark runs it: every chunk to its planned length, runaways kept."""
    return EngineOptions(quantize=args.quantize, max_num_seqs=args.max_seqs, gpu_memory_utilization=args.gpu_memory,
                         length_margin=1.0, retries=0, keep_runaways=True, sampler=args.sampler, replicas=args.replicas,
                         async_scheduling=args.async_, engine_processes=args.engine_processes,
                         engine_core_inline=args.engine_core_inline)


def measure(args: argparse.Namespace, base: dict, threads: str = "") -> list[dict]:
    """Start the engine, warm it up and run the cases: their rows. In this process, or (--ray) in a
    Ray task, after setting OMP_NUM_THREADS to `threads` ("unset": removed; "": as it is)."""
    import vllm

    if threads == "unset":
        os.environ.pop("OMP_NUM_THREADS", None)
    elif threads:
        os.environ["OMP_NUM_THREADS"] = threads
    options = engine_options(args)
    begun = time.perf_counter()
    engine = SpeechEngine(args.model, options)
    start = time.perf_counter() - begun
    chunks = bench_chunks(args.model, args.chunks, args.seconds)
    base = {**base, "vllm": vllm.__version__, "replicas": engine.replicas, "engine_start_s": round(start, 1),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""), "engine_processes": engine.processes is not None,
            "engine_core_inline": args.engine_core_inline and engine.processes is not None}  # as run

    if args.profile_steps:
        print(profile_steps(engine, chunks, warm=30, steps=args.profile_steps))
        return []

    list(engine.takes(chunks[: args.max_seqs]))  # warm-up: every batch size once
    if args.barrier:  # several engines on one GPU: measure them over the same window
        args.barrier.mkdir(parents=True, exist_ok=True)
        (args.barrier / str(os.getpid())).touch()
        while len(list(args.barrier.iterdir())) < args.parties:
            time.sleep(0.05)
    rows = []
    runs = [(args.case, args.max_seqs, [chunks])]
    if args.one_at_a_time:
        runs.append((f"{args.case}, one at a time", 1, [[c] for c in chunks[: args.one_at_a_time]]))
    for case, seqs, groups in runs:
        begun, cpu = time.perf_counter(), time.process_time()
        takes = [t for group in groups for t in engine.takes(group)]
        tokens = sum(t.codes.size + t.finished for t in takes)
        seconds, cpu = time.perf_counter() - begun, time.process_time() - cpu
        running = min(seqs, max(len(g) for g in groups))  # sequences in a step, the batch being full
        rows.append({**base, "case": case, "max_seqs": seqs, "chunks": sum(len(g) for g in groups), "tokens": tokens,
                     "generate_s": round(seconds, 2), "ms_per_step_est": round(1000 * seconds * running / tokens, 2),
                     "tokens_per_s": round(tokens / seconds), "x_realtime": round(tokens / seconds / TOKENS_PER_SECOND, 1),
                     # This process's CPU: with engine cores in their own processes (on a GPU), the engines'
                     # frontends, and what of it each token (a sequence's step) cost.
                     # Steps of the longest-stepped engine (a take's steps count from its engine's start).
                     "engine_steps": max(t.steps[1] for t in takes) if groups == [chunks] else "",
                     "driver_cores": round(cpu / seconds, 2), "driver_us_per_token": round(1e6 * cpu / tokens, 1),
                     "env": {k: v for k, v in os.environ.items() if k.startswith("VLLM_")}})
        print(json.dumps(rows[-1]))
    engine.close()
    return rows


def on_ray(args: argparse.Namespace, base: dict) -> list[dict]:
    """`measure` in a task of a local Ray holding one GPU (a CPU without one), without Ray Data: Ray's cost to an engine alone."""
    import ray

    ray.init(include_dashboard=False, log_to_driver=True)
    try:
        task = ray.remote(**({"num_gpus": 1} if ray.cluster_resources().get("GPU") else {"num_cpus": 1}))(measure)
        rows = ray.get(task.remote(args, base, args.ray_threads))
    finally:
        ray.shutdown()
    return [{**row, "case": f"{row['case']}, in a Ray task (OMP_NUM_THREADS {row['omp_num_threads'] or 'unset'})"}
            for row in rows]


def on_ray_data(args: argparse.Namespace, base: dict) -> list[dict]:
    """The chunks through the Ray path's own speech stage (renderer.cluster.SpeechActor under Ray
    Data's map_batches, takes saved to a store as in a render), without its codec stage. No warm-up:
    the rate is taken from the actor's own stamps, engine ready to last take made."""
    import pickle
    import tempfile

    import ray

    from renderer.cluster import SpeechActor, _groups

    options = engine_options(args)
    chunks = bench_chunks(args.model, args.chunks, args.seconds)
    ray.init(include_dashboard=False, log_to_driver=True)
    ray.data.DataContext.get_current().target_max_block_size = 1  # as the render sets it (renderer/cluster.py)
    try:
        with tempfile.TemporaryDirectory() as out:
            rows = [{"id": i, "chunk": pickle.dumps(c), "key": f"k{i}", "out": out} for i, c in enumerate(chunks)]
            resources = {"num_gpus": 1} if ray.cluster_resources().get("GPU") else {"num_cpus": 1}
            speech = ray.data.from_items(rows).map_batches(
                SpeechActor, fn_constructor_kwargs={"model": args.model, "options": options}, batch_size=len(rows),
                compute=ray.data.ActorPoolStrategy(size=1), **resources)
            begun = time.time()
            batches = list(speech.iter_batches(batch_size=None, batch_format="numpy"))
            ended = time.time()
    finally:
        ray.shutdown()
    groups = [g for b in batches for g in _groups(b)]
    ready = max(g.ready_at for g in groups)
    made = max(at for g in groups for _, _, at in g.takes)
    tokens = sum(t.codes.size + t.finished for g in groups for _, t, _ in g.takes)
    seconds = made - ready
    row = {**base, "case": f"{args.case}, Ray Data speech stage (no codec stage)", "replicas": args.replicas,
           "max_seqs": args.max_seqs, "chunks": len(chunks), "tokens": tokens,
           "engine_start_s": round(ready - begun, 1), "generate_s": round(seconds, 2),
           "ms_per_step_est": round(1000 * seconds * min(args.max_seqs, len(chunks)) / tokens, 2),
           "tokens_per_s": round(tokens / seconds), "x_realtime": round(tokens / seconds / TOKENS_PER_SECOND, 1),
           "arrived_after_made_s": round(ended - made, 2)}
    print(json.dumps(row))
    return [row]


def add_engine_process_options(parser: argparse.ArgumentParser) -> None:
    """--engine-processes and --engine-core-inline, as EngineOptions has them (render_bench's too)."""
    parser.add_argument("--engine-processes", action=argparse.BooleanOptionalAction, default=None,
                        help="each engine with its vLLM frontend in a process of its own (EngineOptions.engine_processes; "
                             "default: where several engines share a GPU)")
    parser.add_argument("--engine-core-inline", action=argparse.BooleanOptionalAction,
                        default=EngineOptions.engine_core_inline,
                        help="each engine process runs its vLLM engine core itself (EngineOptions.engine_core_inline)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--case", required=True)
    parser.add_argument("--sampler", choices=["codes", "vllm"], default="codes")
    parser.add_argument("--max-seqs", type=int, default=256)
    parser.add_argument("--async", dest="async_", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--gpu-memory", type=float, default=0.5)
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--one-at-a-time", type=int, default=0)
    parser.add_argument("--profile-steps", type=int, default=0)
    parser.add_argument("--barrier", type=Path, help="a folder: wait, after warm-up, until --parties processes are ready")
    parser.add_argument("--parties", type=int, default=1)
    add_engine_process_options(parser)
    parser.add_argument("--replicas", type=int, default=EngineOptions.replicas, help="engines side by side on the GPU (0: auto)")
    parser.add_argument("--ray", action="store_true", help="run in a task of a local Ray, on one GPU, without Ray Data")
    parser.add_argument("--ray-data", action="store_true",
                        help="through the Ray path's speech actor under Ray Data, without its codec stage")
    parser.add_argument("--ray-threads", default="",
                        help="with --ray: OMP_NUM_THREADS in the task (default: Ray's own, 1; 'unset': none)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if (args.ray or args.ray_data) and args.profile_steps:
        parser.error("--profile-steps runs the engine in this process: not with --ray")
    if args.profile_steps:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the model runs in this process, under the profiler
        args.replicas = 1  # the profile is of one engine's step

    base = {"date": datetime.date.today().isoformat(), "gpu": device_name(),
            "quantize": "bitsandbytes" if args.quantize else "none", "sampler": args.sampler, "async": args.async_}
    if args.ray_data:
        rows = on_ray_data(args, base)
    elif args.ray:
        rows = on_ray(args, base)
    else:
        rows = measure(args, base)
    append_rows(rows, args.results / "speech.json", args.results / "speech.md", COLUMNS,
                "# Speech-stage benchmark (bench/speech_bench.py)\n\nThe project's SpeechEngine alone on a random-weight "
                "model of kani-tts-400m's size; x realtime = seconds of audio generated per second (50 tokens = 1 s).")


if __name__ == "__main__":
    main()
