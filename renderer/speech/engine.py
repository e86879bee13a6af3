"""KaniTTS on vLLM's offline engine: built once, every chunk queued at once, takes as they finish.

Prompts go in as token ids (`skip_tokenizer_init=True`, `detokenize=False`); the text tokenizer is
loaded here with transformers. Sampling is the model card's, seeded per chunk from the chunk's
content so that a re-run makes the same codes. A frame logits processor keeps answers well-formed.
"""
from __future__ import annotations

import collections
import gc
import hashlib
import itertools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from renderer.book import Chunk, RendererError, Take, first_line
from renderer.codec import DecoderPlan
from renderer.speech import kani

FRAME_PROCESSOR = "renderer.speech.frames:KaniFrameProcessor"
CPU_KV_CACHE_GIB = 1  # KV cache on the CPU: about 87,000 tokens of the full-size model
# Chunks handed to an engine together once that many slots are free. A step that starts sequences
# runs their prefill beside the others' decoding: about 40 ms more than a plain step, by a fit to the
# 10-hour runs on an H200 (bench/README.md). In eights, bench/waves.py counts 1 such step in 20
# instead of 1 in 6, for 1% more steps. Not yet measured on a GPU.
ADMIT_TOGETHER = 8
# GPU memory one engine's share needs at the least, to be counted as room for an engine: one ran
# with 128 sequences in a 4.2 GiB share at 129x (an 8 GiB card emulated on an H200: bench/README.md).
ENGINE_GIB = 4.2
GPU_REPLICAS = 3  # engines on one GPU by default: on an H100, 1.7x one engine's whole render (bench/README.md)
# Threads decoding on a large GPU by default. On an H200 the 10-hour book rendered at 512x on 2 threads
# against 484x on 1 (one run each, one machine): the decode after the last take fell from 23.0 s to 19.8 s
# (bench/README.md, "Tenth session").
DECODE_THREADS = 2
# The codec's share of a GPU's memory each decoding thread needs to count: batches of up to 3,600 frames
# peaked at 10.1 GiB in the render's process on one thread and 29.1 GiB on two, on an H200.
DECODE_THREAD_GIB = 16
DEFAULT_GRAPH_BATCH = 512  # vLLM's largest CUDA-graph batch unless told otherwise
SEED_BITS = 31  # vLLM takes a signed 32-bit seed


class EngineError(RendererError):
    """The speech engine could not start: one line for the user, with what to change."""


@dataclass(frozen=True)
class EngineOptions:
    quantize: bool = True  # bitsandbytes 4-bit on GPU; full precision is the opt-out
    gpu_memory_utilization: float = 0.5  # of the GPU's memory for vLLM; the rest is the codec's to decode in
    max_num_seqs: int = 256  # sequences generated at once
    length_margin: float = 2.0  # max_tokens = estimated speech x this, before a chunk is a runaway
    retries: int = 2  # new seeds tried for a runaway chunk
    keep_runaways: bool = False  # keep a runaway's audio (cut at max_tokens) instead of failing
    enforce_eager: bool = False  # skip torch.compile and CUDA graphs (faster start, slower steps)
    async_scheduling: bool = True  # GPU: schedule step n+1 while step n runs
    # vLLM engines side by side on one GPU, each with its share of the memory and of the chunks: a
    # step's Python work (scheduling, bookkeeping) keeps one engine's GPU mostly idle. 0: GPU_REPLICAS
    # on a GPU, 1 on the CPU (where engines run in this process, one after another).
    replicas: int = 0
    # GPUs of this host to spread the engines over (`replicas` on each, each GPU's memory shared as
    # on one), with a codec on each to decode: 1 by default, 0 for every visible GPU.
    data_parallel: int = 1
    seed: int = 0  # mixed into every chunk's seed
    temperature: float = kani.TEMPERATURE
    top_p: float = kani.TOP_P
    repetition_penalty: float = kani.REPETITION_PENALTY
    # "codes": the frame processor samples over the 4,033 candidates of each position (vLLM runs
    # greedy); "vllm": the processor only masks and vLLM samples over the whole vocabulary.
    sampler: str = "codes"
    # The codec's decoder under torch.compile (Codec): a run's decode setting travels with its engine's.
    compile_codec: bool = False
    # Threads decoding at once on each GPU, sharing its codec, each on a CUDA stream of its own. 0: as
    # decode_threads_on_each_gpu says (2 on a large GPU). 1 with a compiled codec.
    decode_threads: int = 0
    # How the codec's decoder runs its layers (DecoderPlan: stages channels-last, Triton kernels). The default is
    # DecoderPlan's, the fastest measured (its docstring has the numbers); codec.EAGER: no Triton kernels.
    codec_plan: DecoderPlan = field(default_factory=DecoderPlan)
    # Each engine, with its vLLM frontend, in a process of its own (renderer/speech/frontends.py):
    # stepped in turn from this process, each engine waits for the others' outputs to refill its
    # slots. None: where several engines run on a GPU. On an H200, 3 engines: 694x against 612x, their
    # batches 98% full against 67% (bench/README.md, "Seventh session").
    engine_processes: bool | None = None
    # With engine_processes: each engine process runs its vLLM engine core itself, not in a process of
    # its own (VLLM_ENABLE_V1_MULTIPROCESSING=0 there, as on the CPU): one spawn and its imports fewer
    # per engine, but the core's steps and the frontend's work share one thread. On an H200, 3 engines:
    # up in 91-99 s against 160-230 s; the 10-hour book 436x against 434x, the speech stage alone 881x
    # against 955x (bench/README.md, "Eighth session"): a minute saved at every start outweighs that.
    engine_core_inline: bool = True

    def engines_to_start(self) -> int:
        """`replicas`, or its default where it is 0: on a GPU, as many as its share of the memory
        holds at ENGINE_GIB each, 1 to GPU_REPLICAS (an 8 GiB card at 0.5: 1); 1 on the CPU."""
        if self.replicas:
            return self.replicas
        if not _on_gpu():
            return 1
        return max(1, min(GPU_REPLICAS, int(gpu_memory_gib() * self.gpu_memory_utilization / ENGINE_GIB)))

    def decode_threads_on_each_gpu(self) -> int:
        """`decode_threads`, or where it is 0: on a GPU, as many as the codec's share of its memory holds at
        DECODE_THREAD_GIB each, 1 to DECODE_THREADS; 1 on the CPU. Always 1 with a compiled codec
        (torch.compile is not thread-safe)."""
        if self.compile_codec:
            return 1
        if self.decode_threads:
            return self.decode_threads
        if not _on_gpu():
            return 1
        share = gpu_memory_gib() * (1 - self.gpu_memory_utilization)
        return max(1, min(DECODE_THREADS, int(share / DECODE_THREAD_GIB)))

    def engines_in_all(self) -> int:
        """The engines started: engines_to_start() on each GPU used (one set on the CPU)."""
        return self.engines_to_start() * max(1, len(self.gpus_to_use()))

    def runs_engines_apart(self) -> bool:
        """Whether each engine runs in a process of its own: `engine_processes`, or where it is None,
        whether there are several, on a GPU."""
        if self.engine_processes is not None:
            return self.engine_processes
        return _on_gpu() and self.engines_in_all() > 1

    def gpus_to_use(self) -> list[str]:
        """The GPUs the engines go on, as CUDA_VISIBLE_DEVICES names them for a child process ([]
        on the CPU). Raises EngineError if more are asked for than are visible."""
        visible = visible_gpus()
        if not visible:
            if self.data_parallel > 1:
                raise EngineError(f"--data-parallel {self.data_parallel}: no GPU is visible here")
            return []
        wanted = self.data_parallel or len(visible)
        if wanted > len(visible):
            raise EngineError(f"--data-parallel {wanted}: only {len(visible)} GPU(s) visible here")
        if wanted > 1 and os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":  # all would share this process's GPU
            raise EngineError(f"--data-parallel {wanted}: VLLM_ENABLE_V1_MULTIPROCESSING=0 keeps every engine in this "
                              "process, on one GPU; unset it")
        return visible[:wanted]

    def take_settings(self) -> dict:
        """The settings that change which codes a chunk gets (the key of a stored take)."""
        return {"quantize": self.quantize, "margin": self.length_margin, "seed": self.seed,
                "temperature": self.temperature, "top_p": self.top_p, "rep": self.repetition_penalty,
                "sampler": self.sampler}


def chunk_seed(chunk: Chunk, attempt: int, base: int) -> int:
    """A seed fixed by what the chunk says, who says it, and which attempt this is."""
    key = f"{base}|{attempt}|{chunk.voice.name}|{chunk.voice.model}|{chunk.text}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % (1 << SEED_BITS)


def _is_local(source: str) -> bool:
    return Path(source).expanduser().exists() or source.startswith((".", "/", "~"))


def check_model(model: str) -> None:
    """Raise EngineError now, before anything loads, if a local model folder is not there."""
    if _is_local(model) and not (Path(model).expanduser() / "config.json").is_file():
        raise EngineError(f"{model}: no such model folder (expected a folder with config.json, or a hub id)")


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def gpu_memory_gib() -> float:
    """The first visible GPU's memory, in GiB."""
    import torch

    return torch.cuda.get_device_properties(0).total_memory / 2**30


def visible_gpus() -> list[str]:
    """This process's GPUs, in torch's order (cuda:0, cuda:1...), each as CUDA_VISIBLE_DEVICES
    names it, so that a child process given that one name sees that GPU alone."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    named = [n.strip() for n in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if n.strip()]
    return named[:count] if "CUDA_VISIBLE_DEVICES" in os.environ else [str(k) for k in range(count)]


@contextmanager
def _only_gpu(name: str | None):
    """CUDA_VISIBLE_DEVICES set to one GPU while an engine starts, so that its spawned engine core
    (which reads the variable when it starts) runs there; as it was afterwards. None: unchanged."""
    if name is None:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = name
    try:
        yield
    finally:
        if before is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


@contextmanager
def _hidden_odd_modules():
    """vLLM's CPU build scans every loaded module's namespace at start-up (to rebind Triton
    kernels) and fails on objects whose __dict__ is no mapping, such as llvmlite's, loaded with
    NeMo through numba. Hide such modules from sys.modules while the engine starts."""
    hidden = {}
    with warnings.catch_warnings():  # touching deprecated attributes warns
        warnings.simplefilter("ignore")
        for name, module in list(sys.modules.items()):
            for value in list(getattr(module, "__dict__", {}).values()):
                try:
                    odd = hasattr(value, "__dict__") and not hasattr(vars(value), "get")
                except Exception:  # noqa: BLE001 - any attribute of any module may raise on access
                    odd = True
                if odd:
                    hidden[name] = sys.modules.pop(name)
                    break
    try:
        yield
    finally:
        sys.modules.update(hidden)


def engine_environment() -> bool:
    """Set vLLM's environment for our engines, where not set already (before vLLM starts one).
    Returns whether they run on a GPU."""
    # Model Runner V2 (vLLM >= 0.31 on GPU) rejects V1-interface logits processors.
    os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
    # NeMo registers a vLLM plugin (its speech LM) that drags numba into every engine.
    os.environ.setdefault("VLLM_PLUGINS", "")
    on_gpu = _on_gpu()
    if on_gpu:
        # Forked engine workers cannot use CUDA once this process has touched it (NeMo does).
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    else:
        # In-process on the CPU: no spawned workers, so no __main__ guard is needed by callers.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # Without it vLLM reserves a fraction of all host memory for the KV cache.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
    return on_gpu


class SpeechEngine:
    """One vLLM engine for one KaniTTS model. `takes(chunks)` renders them all.

    before_engines: called once before the first engine starts on the GPU (the codec loading
    meanwhile, in the caller's thread: it must not change the GPU's free memory while vLLM measures
    it); what it raises is raised here."""

    def __init__(self, model: str, options: EngineOptions = EngineOptions(),
                 before_engines: Callable[[], object] = lambda: None):
        self.model = model
        self.options = options
        check_model(model)
        self.tokenizer = self._load_tokenizer()
        self.replicas = options.engines_to_start()  # on each GPU
        self.gpus = options.gpus_to_use()
        self.engines = options.engines_in_all()
        self.llms = []
        self.processes = None
        if options.runs_engines_apart():
            from renderer.speech.frontends import EngineProcesses

            self.processes = EngineProcesses(model, options, self.engines, self.gpus if len(self.gpus) > 1 else [None],
                                             options.gpu_memory_utilization / self.replicas, before_engines)
            return
        before_engines()
        try:
            # One after another (vLLM sizes its memory from what is free), dealt over the GPUs.
            for k in range(self.engines):
                with _only_gpu(self.gpus[k % len(self.gpus)] if len(self.gpus) > 1 else None):
                    self.llms.append(self._load_llm())
        except EngineError:
            self.close()
            raise

    def _source(self) -> str:
        """The model as vLLM and transformers take it: an expanded local path, or the hub id."""
        return str(Path(self.model).expanduser()) if _is_local(self.model) else self.model

    def _stored_in_float32(self) -> bool:
        """Whether a local model's config says float32 (the test models; KaniTTS itself is bf16)."""
        if not _is_local(self.model):
            return False
        try:
            config = json.loads((Path(self._source()) / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return (config.get("dtype") or config.get("torch_dtype")) == "float32"

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self._source())
        except Exception as err:
            raise EngineError(f"{self.model}: the tokenizer could not be loaded: {first_line(err)}") from err

    def _load_llm(self):
        on_gpu = engine_environment()
        from vllm import LLM

        kwargs = {
            "model": self._source(),
            "skip_tokenizer_init": True,
            "logits_processors": [FRAME_PROCESSOR],
            "max_num_seqs": self.options.max_num_seqs,
            "enforce_eager": self.options.enforce_eager,
            "seed": self.options.seed,
            # Prompts share only a few tokens; and with it vLLM splits LFM2 prefills at cache-block
            # boundaries, which the CPU build's per-request seeded sampler cannot handle.
            "enable_prefix_caching": False,
        }
        if self._stored_in_float32():  # vLLM would run it in bf16, where a row's logits shift with its batch
            kwargs["dtype"] = "float32"
        if on_gpu:
            kwargs["gpu_memory_utilization"] = self.options.gpu_memory_utilization / self.replicas
            kwargs["async_scheduling"] = self.options.async_scheduling
            if self.options.max_num_seqs > DEFAULT_GRAPH_BATCH:  # steps past the largest graph run eager
                kwargs["compilation_config"] = {"max_cudagraph_capture_size": self.options.max_num_seqs}
            if self.options.quantize:
                kwargs["quantization"] = "bitsandbytes"
        try:
            if on_gpu:
                return LLM(**kwargs)
            with _hidden_odd_modules():
                return LLM(**kwargs)
        except Exception as err:
            message = first_line(err)
            if "memory" in message.lower():
                message += " (try a smaller --max-seqs or --gpu-memory)"
            raise EngineError(f"{self.model}: the speech model could not be started: {message}") from err

    def close(self) -> None:
        """Stop the engines and free their memory, so that the next model's engine fits."""
        if self.processes is not None:
            self.processes.close()
        for llm in self.llms:
            core = getattr(llm.llm_engine, "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
        self.llms.clear()
        gc.collect()

    def prompt(self, chunk: Chunk) -> list[int]:
        """The prompt's token ids for one chunk, as KaniTTS was trained."""
        text = kani.speaker_text(chunk.text, chunk.voice.speaker)
        return kani.prompt_ids(self.tokenizer(text)["input_ids"])

    def _params(self, chunk: Chunk, attempt: int):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        from renderer.speech.frames import EXTRA_ARG, sampling_args

        o = self.options
        seed = chunk_seed(chunk, attempt, o.seed)
        common = {"max_tokens": kani.max_new_tokens(chunk.seconds, o.length_margin),
                  "stop_token_ids": [kani.END_OF_SPEECH], "detokenize": False,
                  "output_kind": RequestOutputKind.FINAL_ONLY}  # no per-step outputs to build: takes are whole
        if o.sampler == "vllm":
            return SamplingParams(temperature=o.temperature, top_p=o.top_p, repetition_penalty=o.repetition_penalty,
                                  seed=seed, extra_args={EXTRA_ARG: True}, **common)
        # The processor samples and leaves one finite logit: vLLM's greedy argmax takes it.
        return SamplingParams(temperature=0.0, extra_args={
            EXTRA_ARG: sampling_args(seed, o.temperature, o.top_p, o.repetition_penalty)}, **common)

    def takes(self, chunks: Iterable[Chunk]) -> Iterator[Take]:
        """Render every chunk, queued at once; yield each Take as soon as it is final.

        A runaway (max_tokens reached without END_OF_SPEECH) is queued again with another seed, up
        to `retries` times; after that it is yielded with finished=False (its codes cut at the
        budget, kept only if keep_runaways). With several engines (replicas, GPUs), each renders its
        share of the chunks (dealt in turn, in wave_order): in their own processes (engine_processes),
        or here (`in_turn`).
        """
        ordered = wave_order(chunks, self.engines * self.options.max_num_seqs)
        shares = [ordered[k :: self.engines] for k in range(self.engines)]
        yield from (self if self.processes is None else self.processes).in_turn(shares)

    def in_turn(self, shares: list[list[Chunk]]) -> Iterator[Take]:
        """Engine k renders shares[k], in that order. The engines are stepped in turn, each engine core
        running on its own process meanwhile (on the CPU, where they run in this process, simply one
        after another)."""
        streams = [_Stream(self, llm, share) for llm, share in zip(self.llms, shares, strict=True)]
        while any(stream.busy for stream in streams):
            for stream in streams:
                if stream.busy:
                    yield from stream.step()


def wave_order(chunks: Iterable[Chunk], wave: int) -> list[Chunk]:
    """The chunks in their order, cut into waves of `wave` (the sequences all engines run at once),
    each wave longest first; the first wave takes the remainder, so the last is full. Chapters are
    then whole while later ones generate, and the slots stay busy to the end (bench/README.md,
    "Fourth session"; bench/waves.py counts the steps of an order)."""
    chunks = list(chunks)
    first = len(chunks) % wave or wave
    starts = [0, *range(first, len(chunks), wave)]
    ends = [*starts[1:], len(chunks)]
    return [c for a, b in zip(starts, ends) for c in longest_first(chunks[a:b])]


def longest_first(chunks: Iterable[Chunk]) -> list[Chunk]:
    return sorted(chunks, key=lambda c: -c.seconds)


def to_admit(free: int, slots: int, waiting: int, together: int) -> int:
    """How many waiting chunks an engine with `free` of its `slots` free takes now: none until
    `together` are free (or all its slots are, or every waiting one fits), then as many as fit."""
    return min(free, waiting) if waiting and free >= min(together, slots, waiting) else 0


class _Stream:
    """One engine's requests, stepped by the caller, takes returned as they finish. Its chunks are
    handed to the engine ADMIT_TOGETHER at a time, as slots free up: a step that starts new sequences
    (their prompts' prefill beside the others' decoding) is the slow kind, so fewer of them."""

    def __init__(self, speech: SpeechEngine, llm, chunks: list[Chunk]):
        self.speech, self.engine = speech, llm.llm_engine
        self.pending: dict[str, tuple[Chunk, int, int]] = {}  # request id -> chunk, attempt, step queued
        self.backlog = collections.deque(chunks)  # not yet handed to the engine, in order
        self.serial = itertools.count()
        self.steps = 0
        self.admit()

    @property
    def busy(self) -> bool:
        return bool(self.pending or self.backlog)

    def admit(self) -> None:
        """Hand the engine waiting chunks for its free slots, ADMIT_TOGETHER at the least (to_admit)."""
        slots = self.speech.options.max_num_seqs
        for _ in range(to_admit(slots - len(self.pending), slots, len(self.backlog), ADMIT_TOGETHER)):
            self.add(self.backlog.popleft(), 0)

    def add(self, chunk: Chunk, attempt: int) -> None:
        from vllm.inputs import TokensPrompt

        request_id = f"r{next(self.serial)}"  # no "-": vLLM may append "-suffix"
        self.pending[request_id] = (chunk, attempt, self.steps)
        prompt = TokensPrompt(prompt_token_ids=self.speech.prompt(chunk))
        self.engine.add_request(request_id, prompt, self.speech._params(chunk, attempt))

    def step(self) -> list[Take]:
        """One engine step; the takes it finished (a runaway with retries left is queued again)."""
        options = self.speech.options
        try:
            outputs = self.engine.step()
            self.steps += 1
        except Exception as err:
            raise EngineError(f"{self.speech.model}: the speech engine stopped: {first_line(err)} (out of memory? "
                              "lower --max-seqs or --gpu-memory); finished chunks are kept") from err
        takes = []
        for output in outputs:
            if not output.finished:
                continue
            chunk, attempt, queued = self.pending.pop(output.request_id.split("-")[0])
            answer = output.outputs[0]
            codes, finished = kani.answer_codes(answer.token_ids)
            finished = finished or answer.finish_reason == "stop"  # stopped on END_OF_SPEECH
            if not finished and attempt < options.retries:
                self.add(chunk, attempt + 1)
                continue
            takes.append(Take(chunk=chunk, codes=codes, finished=finished, attempts=attempt + 1,
                              steps=(queued, self.steps)))
        self.admit()
        return takes
