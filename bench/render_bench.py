"""Whole-render benchmark: the project's own render path, text to chapter files, on random-weight
models of the real size. Random weights never say END_OF_SPEECH, so every chunk runs to its planned
length (length margin 1.0, runaways kept): the numbers measure speed, not speech.

    python bench/render_bench.py --models /tmp/models [--no-quantize] [--repeat 10] [--results DIR]

Appends one row to DIR/render.json and rewrites DIR/render.md from all rows.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from codec_bench import decode_as_they_came  # bench/, beside this script
from results_table import append_rows, device_name
from speech_bench import add_engine_process_options

from renderer import cluster, render
from renderer import codec as codec_module
from renderer.book import Book
from renderer.cluster import RayOptions
from renderer.codec import FRAMES_PER_SECOND, DecoderPlan
from renderer.read import read_book
from renderer.render import RenderOptions, render_book
from renderer.speech import engine as engine_module
from renderer.speech.engine import EngineOptions
from renderer.speech.kani import TOKENS_PER_FRAME
from renderer.speech.voices import resolve_voice

ROOT = Path(__file__).resolve().parents[1]
# The codec's DecoderPlan switches, each a --codec-NAME / --no-codec-NAME flag defaulting to the renderer's plan
CODEC_SWITCHES = {
    "fused": "the codec's narrower residual units as Triton kernels",
    "fused_apart": "with --codec-fused: each fused unit's activation as a kernel of its own, then the convolution kernel",
    "kernel_activations": "the codec's other activations as Triton kernels",
    "kernel_upsampling": "the codec's up-sampling stages as Triton kernels",
    "folded": "cuDNN's convolutions without their biases, added by the kernels after; a stage's mean summed as written",
    "chained": "each fused unit's middle activated as its first convolution kernel writes it",
    "tma": "the fused units' convolution kernel moving its tiles by descriptors (the GPU's tensor memory accelerator)",
}
COLUMNS = ("date", "gpu", "vllm", "case", "quantize", "sampler", "async", "replicas", "data_parallel", "gpu_memory",
           "max_seqs", "codec_compiled", "ray", "gpus", "chunks", "audio_s", "engine_start_s", "codec_load_s",
           "generate_s", "tokens_per_s", "generate_x_realtime", "decode_s", "decode_x_realtime", "decode_fill", "total_s",
           "render_x_realtime", "peak_gpu_gib")


def repeated(book: Book, times: int) -> Book:
    """The book `times` over, as one longer book (enough chunks to fill a batch). The first copy is the
    book; each later one keeps every paragraph's word count, with the book's words in an order of its
    own (shuffled, seeded by the copy), so no two copies share a chunk's text: a copy's chunks are made,
    never taken from takes another copy stored."""
    words = [w for c in book.chapters for p in c.paragraphs for w in p.text.split()]
    chapters = []
    for k in range(times):
        order = words[:]
        if k:
            random.Random(k).shuffle(order)
        at = 0
        for c in book.chapters:
            paragraphs = []
            for p in c.paragraphs:
                n = len(p.text.split())
                paragraphs.append(dataclasses.replace(p, text=" ".join(order[at:at + n])))
                at += n
            chapters.append(dataclasses.replace(c, index=len(book.chapters) * k + c.index, title=f"{c.title} ({k + 1})",
                                                paragraphs=tuple(paragraphs)))
    return dataclasses.replace(book, chapters=tuple(chapters))


class Sampler:
    """A `sample` loop on a thread of its own while in a `with` block; it ends when `stop` is set."""

    def __init__(self):
        self.stop = threading.Event()

    def sample(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        threading.Thread(target=self.sample, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.stop.set()


class PeakMemory(Sampler):
    """GPU memory in use, sampled every 0.2 s with nvidia-smi: the peak of the device-wide total, each
    process's own peak (vLLM's engines run in processes of their own) and each GPU's (by its bus id)."""

    def __init__(self):
        self.peak = 0.0
        self.by_process: dict[str, float] = {}
        self.by_gpu: dict[str, float] = {}
        super().__init__()

    def sample(self) -> None:
        query = ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory,gpu_bus_id",
                 "--format=csv,noheader,nounits"]
        while not self.stop.wait(0.2):
            try:
                lines = subprocess.run(query, capture_output=True, text=True, check=True).stdout.splitlines()
            except (OSError, subprocess.CalledProcessError):
                return
            total, gpus = 0.0, {}
            for line in lines:
                pid, name, used, bus = (part.strip() for part in line.split(","))
                gib = float(used) / 1024
                total += gib
                gpus[bus] = gpus.get(bus, 0.0) + gib
                key = f"{pid} {Path(name).name}"
                self.by_process[key] = max(self.by_process.get(key, 0.0), gib)
            self.peak = max(self.peak, total)
            for bus, gib in gpus.items():
                self.by_gpu[bus] = max(self.by_gpu.get(bus, 0.0), gib)


class CpuUse(Sampler):
    """Cores each kind of process used, sampled from /proc every second while the render runs: the
    engine cores, their frontends' processes (--engine-processes), this process (driver, decoder) and
    each of its threads (by Python thread name), the chapter workers. `between(a, b)` averages the
    samples from a to b seconds after the start (the render's marks)."""

    KINDS = (("EngineCore", "engine cores"), ("EngineFrontend", "engine frontends"), ("spawn_main", "chapter workers"))
    DRIVER = "render (driver, decoder)"  # this process

    def __init__(self):
        self.samples: list[tuple[float, dict[str, float]]] = []  # (seconds from the start, cores by kind)
        super().__init__()
        self.tick = os.sysconf("SC_CLK_TCK")

    def kind(self, pid: int | tuple[str, int]) -> str:
        if isinstance(pid, tuple):  # one of this process's threads, by its Python name where it has one
            names = {t.native_id: t.name for t in threading.enumerate()}
            return f"render thread: {names.get(pid[1], 'not a Python thread')}"
        if pid == os.getpid():
            return self.DRIVER
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return ""
        return next((name for key, name in self.KINDS if key in args or key in comm), "other")

    def ticks(self) -> dict[int | tuple[str, int], int]:
        """CPU ticks of every process, and of each thread of this one (keyed ("thread", tid))."""
        out: dict[int | tuple[str, int], int] = {}
        threads = [(("thread", int(e.name)), e) for e in Path(f"/proc/{os.getpid()}/task").iterdir()]
        for key, entry in [(int(e.name), e) for e in Path("/proc").iterdir() if e.name.isdigit()] + threads:
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[key] = int(fields[11]) + int(fields[12])  # utime + stime
        return out

    def sample(self) -> None:
        begun, before = time.perf_counter(), self.ticks()
        last = begun
        while not self.stop.wait(1.0):
            now, after = time.perf_counter(), self.ticks()
            cores: dict[str, float] = {}
            for pid, used in after.items():
                # Named afresh each time: an engine core starts as a spawned child and renames itself.
                if (delta := used - before.get(pid, used)) and (kind := self.kind(pid)):
                    cores[kind] = cores.get(kind, 0.0) + delta / self.tick / (now - last)
            self.samples.append((now - begun, cores))
            before, last = after, now

    def between(self, start: float, end: float) -> dict[str, float]:
        picked = [cores for at, cores in self.samples if start <= at <= end]
        kinds = {k for cores in picked for k in cores}
        return {k: round(sum(c.get(k, 0.0) for c in picked) / len(picked), 2) for k in sorted(kinds)} if picked else {}


def py_spy_when_generating(seconds: int, output: Path) -> None:
    """From the moment the engines start taking chunks, sample every process of this render (this one,
    the engine cores, their frontends, the chapter workers) for `seconds` with py-spy: collapsed stacks
    (one "process;thread;frames count" line each) in `output`, to read where each one's CPU goes."""
    original = engine_module.SpeechEngine.takes

    def takes(engine, chunks):
        output.parent.mkdir(parents=True, exist_ok=True)
        command = ["py-spy", "record", "--pid", str(os.getpid()), "--duration", str(seconds), "--rate", "50",
                   "--subprocesses", "--threads", "--nonblocking", "--format", "raw", "--output", str(output)]
        try:
            with open(output.with_suffix(".log"), "w") as log:  # the child keeps its own copy of the file
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        except OSError as err:
            print(f"py-spy not started: {err}", flush=True)
        yield from original(engine, chunks)

    engine_module.SpeechEngine.takes = takes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=Path, required=True, help="folder of `render models tiny --size full`")
    parser.add_argument("--book", type=Path, default=ROOT / "samples" / "moby-dick-opening.md")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--max-seqs", type=int, default=EngineOptions.max_num_seqs)
    parser.add_argument("--gpu-memory", type=float, default=EngineOptions.gpu_memory_utilization)
    parser.add_argument("--sampler", choices=["codes", "vllm"], default=EngineOptions.sampler)
    parser.add_argument("--async", dest="async_", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--case", default="defaults")
    parser.add_argument("--replicas", type=int, default=EngineOptions.replicas, help="engines side by side on the GPU (0: auto)")
    parser.add_argument("--data-parallel", type=int, default=EngineOptions.data_parallel,
                        help="GPUs to spread the engines over, --replicas on each (0: every GPU)")
    parser.add_argument("--compile-codec", action="store_true", help="torch.compile the codec's decoder")
    parser.add_argument("--ray", action="store_true", help="render on a local Ray (renderer/cluster.py)")
    parser.add_argument("--ray-engines", type=int, default=0, help="with --ray: speech actors (0: one per GPU)")
    parser.add_argument("--ray-codec-gpu", type=float, default=0.0,
                        help="with --ray: the GPU share each codec actor asks for (1: a GPU of its own; default: the "
                             "renderer's, beside a speech actor)")
    add_engine_process_options(parser)
    parser.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                        help="profile every process of the render with py-spy for this long once generating begins "
                             "(collapsed stacks in RESULTS/py-spy.txt)")
    parser.add_argument("--codec-channels-last", action=argparse.BooleanOptionalAction, default=codec_module.CHANNELS_LAST,
                        help="the codec's decoder on channels-last tensors (renderer.codec.CHANNELS_LAST; "
                             "unset: when compiled)")
    parser.add_argument("--codec-gib", type=float, default=0.0,
                        help="cap this process's CUDA allocator (the codec's) at this many GiB, as a small card's memory "
                             "would: with --gpu-memory, a consumer card on a big one")
    parser.add_argument("--order", choices=["waves", "longest"], default="waves",
                        help="how the engines are dealt the chunks: the renderer's waves, or the whole book longest first "
                             "(the order before waves, to compare)")
    parser.add_argument("--admit-together", type=int, default=engine_module.ADMIT_TOGETHER,
                        help="chunks handed to an engine together once that many slots are free (1: one by one)")
    parser.add_argument("--chapter-workers", type=int, default=render.CHAPTER_WORKERS,
                        help="processes mastering and writing chapters")
    plan = DecoderPlan()  # the renderer's: each --no-codec-... turns a part of it off
    for name, help in CODEC_SWITCHES.items():
        parser.add_argument(f"--codec-{name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                            default=getattr(plan, name), help=f"{help} (DecoderPlan {name})")
    parser.add_argument("--codec-wide-stages", type=int, default=plan.wide_stages,
                        help="the codec's first this many up-sampling stages channels-last (DecoderPlan wide_stages)")
    parser.add_argument("--decode-threads", type=int, default=EngineOptions.decode_threads,
                        help="threads decoding at once on each GPU, each on a CUDA stream of its own; 0: the "
                             "renderer's choice (EngineOptions.decode_threads_on_each_gpu; decode_s is summed over them)")
    parser.add_argument("--decode", choices=["by-length", "as-they-came"], default="by-length",
                        help="the codec's batches: of like length (since 2026-12-01), or each hand-over one batch padded "
                             "to 2 s, as before (to compare)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--progress", action="store_true",
                        help="the render's progress bars on stderr (to see how far a cut-off case got)")
    args = parser.parse_args()

    import torch
    import vllm

    if args.ray_codec_gpu:
        cluster.CODEC_GPU_SHARE = args.ray_codec_gpu  # read as the codec stage is made

    render.CHAPTER_WORKERS = args.chapter_workers  # read as the chapter pool is made
    codec_module.CHANNELS_LAST = args.codec_channels_last  # read as the codec loads
    if args.py_spy:
        py_spy_when_generating(args.py_spy, args.results / "py-spy.txt")
    engine_module.ADMIT_TOGETHER = args.admit_together  # read as each engine's stream admits chunks
    if args.order == "longest":
        engine_module.wave_order = lambda chunks, wave: engine_module.longest_first(chunks)
    if args.decode == "as-they-came":
        decode_as_they_came()
    if args.codec_gib:
        torch.cuda.set_per_process_memory_fraction(args.codec_gib * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    voice = resolve_voice("en", str(args.models / "kani"), str(args.models / "codec.nemo"))
    book = repeated(read_book(args.book), args.repeat)
    engine = EngineOptions(quantize=args.quantize, max_num_seqs=args.max_seqs, gpu_memory_utilization=args.gpu_memory,
                           length_margin=1.0, retries=0, keep_runaways=True, sampler=args.sampler, replicas=args.replicas,
                           async_scheduling=args.async_, compile_codec=args.compile_codec,
                           data_parallel=args.data_parallel, engine_processes=args.engine_processes,
                           engine_core_inline=args.engine_core_inline, decode_threads=args.decode_threads,
                           codec_plan=DecoderPlan(wide_stages=args.codec_wide_stages,
                                                  **{name: getattr(args, f"codec_{name}") for name in CODEC_SWITCHES}))
    with tempfile.TemporaryDirectory() as out, PeakMemory() as memory, CpuUse() as cpu:
        options = RenderOptions(voice=voice, out=Path(out), fmt="flac", engine=engine, progress=args.progress)
        report = render_book(book, options, cluster=RayOptions(engines=args.ray_engines) if args.ray else None)
    s = report.seconds
    # Until the engines are up. The codec loads while they start (and the first waits for it), so the two
    # overlap: subtracting both, as before 2026-12-01, would count the codec's load twice. (Ray: no codec_load.)
    setup = max(s["engine_start"], s["codec_load"])
    speech = report.tokens / TOKENS_PER_FRAME / FRAMES_PER_SECOND
    row = {
        "date": datetime.date.today().isoformat(),
        "gpu": device_name(),
        "vllm": vllm.__version__,
        "model": "kani-tts-400m arch, random",
        "case": args.case,
        "quantize": "bitsandbytes" if args.quantize else "none",
        "sampler": args.sampler,
        "async": args.async_, "replicas": engine.engines_to_start(),
        "engine_processes": engine.runs_engines_apart() if not args.ray else "",
        "engine_core_inline": args.engine_core_inline and engine.runs_engines_apart() and not args.ray,  # as run
        "data_parallel": len(engine.gpus_to_use()) if not args.ray else "",
        "gpu_memory": args.gpu_memory,
        "max_seqs": args.max_seqs,
        "codec_compiled": args.compile_codec, "codec_channels_last": codec_module.runs_channels_last(args.compile_codec,
                                                                                          torch.cuda.is_available()),
        "codec_cap_gib": args.codec_gib or "",
        # On Ray, the start of Ray and of the codec actor are inside total_s; engine_start_s is the actors'.
        "ray": args.ray and (args.ray_engines or "1 per GPU"), "gpus": torch.cuda.device_count(),
        "ray_start_s": round(s.get("ray_start", 0.0), 1),
        "chunks": report.chunks,
        "audio_s": round(report.audio_seconds, 1),
        "engine_start_s": round(s["engine_start"], 1),
        "codec_load_s": round(s["codec_load"], 1),
        "generate_s": round(s["generate"], 1),
        "tokens_per_s": round(report.tokens / s["generate"]),
        "generate_x_realtime": round(speech / s["generate"], 1),
        "decode_s": round(s["decode"], 1),
        "decode_x_realtime": round(speech / s["decode"], 1),
        "decode_fill": round(report.decode_fill, 3) or "",  # of the decoder's work, what was not padding
        "store_s": round(s.get("store", 0.0), 1),  # storing the takes (fsynced), on its own thread since 2026-12-01
        "total_s": round(s["total"] - setup, 1),
        "render_x_realtime": round(speech / (s["total"] - setup), 1),
        "peak_gpu_gib": round(memory.peak, 1),
        # When each stage was ready, and the takes made, decoded, written (s from the render's start).
        "marks": {k: round(v, 1) for k, v in sorted(report.marks.items(), key=lambda kv: kv[1])},
        "engine_steps": max((done for _, done in report.steps), default=0),  # the longest-stepped engine's
        "peak_gib_by_process": {k: round(v, 2) for k, v in memory.by_process.items()},
        "peak_gib_by_gpu": {k: round(v, 2) for k, v in memory.by_gpu.items()},
        "order": args.order, "decode": args.decode, "decode_threads": engine.decode_threads_on_each_gpu(),
        **{f"codec_{name}": getattr(args, f"codec_{name}") for name in CODEC_SWITCHES},
        "codec_wide_stages": args.codec_wide_stages,
        "chapter_workers": args.chapter_workers, "admit_together": args.admit_together, "cpus": os.cpu_count(),
        # Cores in use by kind of process while the engines generated (engines ready to the last take made).
        "cores_generating": cpu.between(report.marks.get("engines_ready", 0.0), report.marks.get("last_made", 0.0)),
        "env": {k: v for k, v in os.environ.items() if k.startswith("VLLM_")},
    }
    print(json.dumps(row))
    append_rows([row], args.results / "render.json", args.results / "render.md", COLUMNS,
                "# Whole-render benchmark (bench/render_bench.py)\n\nRandom-weight models of kani-tts-400m's and the nano "
                "codec's real size; every chunk runs to its planned length (random weights never stop). x realtime = "
                "seconds of audio per second of wall time.")


if __name__ == "__main__":
    main()
