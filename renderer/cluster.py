"""Rendering on Ray: the takes of a run generated and decoded by actors across a cluster's GPUs.

The plain path (renderer.render) runs one engine per model in this process. With `--ray`, the same
plans become Ray Data pipelines, one per model:

    chunks (pickled, with their store key) -> speech actors (one SpeechEngine each: one per GPU)
        -> codec actors (decode) -> this process: stored if new, then each book's chapter writer

Each speech actor queues its whole batch at once and yields takes as its engine finishes them, in
groups of up to 16 (one Ray Data row each: `_Group`), so decoding and chapter writing start while
the rest generate. A take is saved to the book's take
store by the actor that made it (when OUT is on storage the actor's node sees) and again by this
process if it is missing: a run that loses a node resumes without redoing finished chunks, and an
actor that Ray restarts on a batch skips what the store already holds. Each chunk's seed comes from
its text and voice, so the takes are the ones the plain path makes.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from renderer.book import Chunk, RendererError, Take, first_line
from renderer.speech.engine import EngineOptions
from renderer.store import TakeStore

if TYPE_CHECKING:
    from renderer.render import RunReport, _BookPlan, _Routes

SPEECH_GPU_SHARE = 0.75  # of a GPU per speech actor: two never share a GPU, and a codec actor fits beside one
CODEC_GPU_SHARE = 0.25
SPEECH_BATCH = 4096  # chunks a speech actor queues at once at most (a lost actor redoes at most these)
DECODE_GROUPS = 2  # groups of takes a codec actor decodes at once
FLUSH_TAKES = 16  # a speech actor hands on its finished takes in groups of this many...
FLUSH_SECONDS = 0.5  # ...or after this long, whichever comes first
CONNECT_SECONDS = 5  # for a cluster's address to answer
FORWARDED_ENV = ("HF_", "VLLM_", "RENDERER_")  # environment the actors get from this process (not CUDA_*: Ray sets that)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to render on Ray."""

    address: str | None = None  # a cluster's address; None: RAY_ADDRESS, else a local Ray started here
    engines: int = 0  # speech actors; 0: one per GPU of the cluster, 1 without GPUs
    decoders: int = 0  # codec actors; 0: as many as speech actors


def _import_ray():
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "CRITICAL")  # no plans, progress or tracebacks: errors come here
    # Ray's C++ core warns on stderr of each actor it could restart; at "fatal" it says so once instead.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        import ray
    except ImportError as err:
        raise RendererError("--ray needs Ray: pip install 'ray[data]'") from err
    return ray


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS's, or start a local one) unless this process
    is in one already. True if this call started Ray, which is then this run's to shut down."""
    started = not ray.is_initialized()
    if started:
        _check_reachable(address or os.environ.get("RAY_ADDRESS"))
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
        on_term = signal.getsignal(signal.SIGTERM)
        try:
            # RENDERER_RAY_LOGS=1: the actors' own output (vLLM's engine logs among it) shown here, to diagnose.
            ray.init(address=address, include_dashboard=False, log_to_driver=os.environ.get("RENDERER_RAY_LOGS") == "1",
                     logging_level=logging.ERROR, runtime_env={"env_vars": env})
        except Exception as err:  # Ray raises ConnectionError, RuntimeError, ValueError...
            where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
            raise RendererError(f"Ray at {where}: cannot connect: {first_line(err)}") from err
        finally:  # Ray's core takes SIGTERM (and dies of it at once): the render's own stop comes first
            if on_term is not None and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, on_term)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the render's own bars show progress
    context.target_max_block_size = 1  # every yielded group of takes is its own block: moves on at once
    return started


def _check_reachable(address: str | None) -> None:
    """Raise RendererError now if nothing answers at a host:port address (Ray itself retries for
    minutes before it gives up)."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RendererError(f"Ray at {address}: not an address (HOST:PORT, or ray://HOST:PORT)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as err:
        raise RendererError(f"Ray at {address}: cannot connect: nothing answers there ({err.strerror or err}); "
                            "is `ray start --head` running?") from err


@dataclass
class _Group:
    """Takes travelling together through the pipeline, as ONE Ray Data row (`_rows`): Ray Data
    moves each row of a stage's output as a block of its own here (target_max_block_size), and a
    block costs tens of milliseconds of its bookkeeping. Row by row that held a render on an H200 to
    ~10 takes a second (bench/README.md, "Ray"); a group of takes goes for the cost of one.

    takes: (id, take, when made); codes travel as int16. Times named *_at are wall-clock
    (time.time()), for the run's marks; *_seconds are summed by the run."""

    takes: list[tuple[int, Take, float]]
    fresh: bool  # made by this run, not found stored
    engine_seconds: float = 0.0  # the speech actor's engine start, on its first group only
    ready_at: float = 0.0  # when the speech actor's engine was ready (0: none, stored takes)
    decode_seconds: float = 0.0
    codec_ready_at: float = 0.0
    decoded_at: float = 0.0


def _rows(groups: list[_Group]) -> dict[str, np.ndarray]:
    return {"group": np.array([pickle.dumps(g) for g in groups], dtype=object)}


def _groups(batch: dict[str, np.ndarray]) -> list[_Group]:
    return [pickle.loads(b) for b in batch["group"]]


def _grouped(takes: list[tuple[int, Take, float]], fresh: bool, engine_seconds: float = 0.0,
             ready_at: float = 0.0) -> _Group:
    light = [(i, dataclasses.replace(t, codes=t.codes.astype(np.int16)), made) for i, t, made in takes]
    return _Group(light, fresh, engine_seconds, ready_at)


class SpeechActor:
    """One speech engine (on one GPU, or the CPU). Called with a batch of chunks: yields groups of
    takes as they finish, each saved to its book's take store first."""

    def __init__(self, model: str, options: EngineOptions, omp_threads: str | None = None):
        from renderer.speech.engine import SpeechEngine

        # Ray sets OMP_NUM_THREADS=1 in its workers, and the engine process spawned here would inherit
        # it: the engine starts with this process's own setting instead (`omp_threads`; None: unset).
        if omp_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = omp_threads
        begun = time.perf_counter()
        self.engine, self.error = None, None
        try:
            self.engine = SpeechEngine(model, options)
        except RendererError as err:  # raised with the first batch: an actor dying as it starts is retried forever
            self.error = err
        self.start_seconds = time.perf_counter() - begun  # reported once, with the first takes
        self.ready_at = time.time()
        self.retries = options.retries

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        if self.error is not None:
            raise self.error
        chunks: list[Chunk] = [pickle.loads(b) for b in batch["chunk"]]
        where = {id(c): (int(i), key, TakeStore(Path(out))) for c, i, key, out
                 in zip(chunks, batch["id"], batch["key"], batch["out"], strict=True)}
        todo, stored = [], []
        for chunk in chunks:  # a batch Ray gives again (its actor was lost) finds its takes stored
            i, key, store = where[id(chunk)]
            take = store.load_settled(chunk, key, self.retries)
            if take is not None:
                stored.append((i, take, 0.0))
            else:
                todo.append(chunk)
        if stored:
            yield self._hand_on(stored, fresh=False)
        group, last = [], time.monotonic()
        for take in self.engine.takes(todo):
            i, key, store = where[id(take.chunk)]
            made = time.time()
            store.save(take, key)
            group.append((i, take, made))
            if len(group) >= FLUSH_TAKES or time.monotonic() - last >= FLUSH_SECONDS:
                yield self._hand_on(group, fresh=True)
                group, last = [], time.monotonic()
        if group:
            yield self._hand_on(group, fresh=True)

    def _hand_on(self, takes: list[tuple[int, Take, float]], fresh: bool) -> dict[str, np.ndarray]:
        row = _rows([_grouped(takes, fresh, self.start_seconds, self.ready_at)])
        self.start_seconds = 0.0
        return row


class CodecActor:
    """The nano codec (on a share of a GPU, or the CPU): decodes each batch of takes to float32 audio."""

    def __init__(self, codec: str, keep_runaways: bool, compile_codec: bool = False):
        from renderer.codec import load_codec

        self.codec, self.error = None, None
        try:
            self.codec = load_codec(codec, compile=compile_codec)
        except RendererError as err:  # raised with the first batch, as SpeechActor's
            self.error = err
        self.keep_runaways = keep_runaways
        self.ready_at = time.time()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.error is not None:
            raise self.error
        begun = time.perf_counter()
        groups = _groups(batch)
        # A runaway that will not be kept is not decoded: its chapter fails.
        wanted = [t for g in groups for _, t, _ in g.takes if t.finished or self.keep_runaways]
        for take, samples in zip(wanted, self.codec.decode([t.codes.astype(np.int64) for t in wanted]), strict=True):
            take.audio = np.asarray(samples, dtype=np.float32)
        for k, group in enumerate(groups):
            group.decode_seconds = time.perf_counter() - begun if k == 0 else 0.0  # the batch's, counted once
            group.codec_ready_at, group.decoded_at = self.ready_at, time.time()
        return _rows(groups)


def _input_rows(chunks: list[Chunk], plans: dict[int, _BookPlan]) -> list[dict]:
    return [{"id": i, "chunk": pickle.dumps(c), "key": plans[id(c)].keys[id(c)],
             "out": str(plans[id(c)].render.options.out.resolve())} for i, c in enumerate(chunks)]


def _stored_rows(takes: list[Take]) -> list[dict]:
    """Takes already stored, in groups, as rows the codec stage takes like the speech stage's."""
    numbered = [(i, take, 0.0) for i, take in enumerate(takes)]
    return [{"group": pickle.dumps(_grouped(numbered[k : k + FLUSH_TAKES], fresh=False))}
            for k in range(0, len(numbered), FLUSH_TAKES)]


def speech_stage(ray, rows, actor, kwargs: dict, batch: int, engines: int, resources: dict):
    """`rows` through `engines` actors of the class `actor`, a batch of `batch` rows a call. One batch
    at a time an actor: Ray Data's default of two would hand both of a two-engine job's batches to the
    engine ready first, and the other would get none (bench/README.md, "Fifth session")."""
    return rows.map_batches(actor, fn_constructor_kwargs=kwargs, batch_size=batch,
                            compute=ray.data.ActorPoolStrategy(size=engines, max_tasks_in_flight_per_actor=1),
                            **resources)


def render_on_ray(plans: list[_BookPlan], missing: dict[str, list[Chunk]], codec: str, options: EngineOptions,
                  run: RunReport, routes: _Routes, cluster: RayOptions) -> None:
    """Generate and decode every plan's takes on Ray, routing each to its book as it arrives."""
    ray = _import_ray()
    begun = time.perf_counter()
    started_here = _connect(ray, cluster.address)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        engines = cluster.engines or max(1, int(gpus))
        decoders = cluster.decoders or engines
        speech_res = {"num_gpus": SPEECH_GPU_SHARE} if gpus else {"num_cpus": 1}
        codec_res = {"num_gpus": CODEC_GPU_SHARE} if gpus else {"num_cpus": 1}
        run.seconds["ray_start"] = time.perf_counter() - begun
        owner = {id(c): plan for plan in plans for c in plan.chunks}

        def decode(dataset):
            return dataset.map_batches(CodecActor, fn_constructor_kwargs={"codec": codec,
                                       "keep_runaways": options.keep_runaways,
                                       "compile_codec": options.compile_codec}, batch_size=DECODE_GROUPS,
                                       compute=ray.data.ActorPoolStrategy(size=decoders), **codec_res)

        stored = [t for plan in plans for t in plan.stored.values()]
        if stored:
            _drain(decode(ray.data.from_items(_stored_rows(stored))), stored, run, routes)
        for model, chunks in missing.items():
            generating = time.perf_counter()
            rows = ray.data.from_items(_input_rows(chunks, owner))
            batch = min(SPEECH_BATCH, math.ceil(len(chunks) / engines))
            actor = {"model": model, "options": options, "omp_threads": os.environ.get("OMP_NUM_THREADS")}
            speech = speech_stage(ray, rows, SpeechActor, actor, batch, engines, speech_res)
            started = _drain(decode(speech), chunks, run, routes, model)
            # The actors start side by side: the longest start is this pipeline's, the rest generating.
            run.seconds["engine_start"] += started
            run.seconds["generate"] += time.perf_counter() - generating - started
    except Exception as err:
        if isinstance(err, RendererError) and not isinstance(err, ray.exceptions.RayError):
            raise  # this process's own
        raise _one_line(err) from err  # what an actor raised, wrapped by Ray
    finally:
        if started_here:
            ray.shutdown()


def _drain(dataset, chunks: list, run: RunReport, routes: _Routes, model: str | None = None) -> float:
    """Take each decoded row as it comes: stored (if new) and counted, then on to its book's writer.
    `chunks`: what the rows' ids index (Chunks, or the stored Takes). Returns the longest engine
    start of the speech actors.

    A task Ray runs again (its actor lost) may hand on takes already handed on: each counts once.
    Raises RendererError if some never came back (they are stored if made: a new run resumes)."""
    arrived: set[int] = set()
    longest_start = 0.0
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for group in _groups(batch):
            longest_start = max(longest_start, group.engine_seconds)
            run.seconds["decode"] += group.decode_seconds
            if group.engine_seconds > 0 and model is not None:
                run.engines.append(model)
            if group.ready_at > 0:
                routes.mark("engines_ready", group.ready_at)
            routes.mark("codecs_ready", group.codec_ready_at)
            decoded = []
            for i, carried, made in group.takes:
                if i in arrived:
                    continue
                arrived.add(i)
                source = chunks[i]
                # The chunk this process knows (routes find a take's book by it), the codes back to int64.
                take = dataclasses.replace(carried, chunk=source.chunk if isinstance(source, Take) else source,
                                           codes=carried.codes.astype(np.int64))
                if group.fresh:
                    routes.generated(take, made)
                if routes.arrived(take):
                    decoded.append(take)
            if decoded:
                routes.decoded(decoded, group.decoded_at)
    if len(arrived) < len(chunks):
        raise RendererError(f"Ray: {len(chunks) - len(arrived)} of {len(chunks)} chunks never came back from the "
                            "cluster; the takes made are stored: run again to resume")
    return longest_start


def _one_line(err: BaseException) -> RendererError:
    """What an actor raised, as the one line it would have been in this process: the RendererError
    at the bottom of Ray's wrapping (its `cause`s), else the last one named in Ray's text of it."""
    seen: BaseException | None = err
    while seen is not None:
        cause = getattr(seen, "cause", None)
        if isinstance(cause, BaseException) and cause is not seen:
            seen = cause
        elif isinstance(seen, RendererError):
            return RendererError(first_line(seen))
        else:
            seen = seen.__cause__
    named = re.findall(r"^renderer\.[\w.]*Error: (.+)$", str(err), flags=re.MULTILINE)
    return RendererError(named[-1] if named else f"Ray: the render failed: {first_line(err)}")
