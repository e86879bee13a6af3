"""Each engine in a process of its own (EngineOptions.engine_processes; by default where several
engines share a GPU).

With several engines in one process, that process steps them in turn, and each step call takes one
step's outputs of one engine: a round goes at the pace of the slowest engine, and the others'
finished sequences are seen, and their slots refilled, late. On an H200 (the speech stage alone), 3
engines stepped so ran their batches 67% full while this process used 0.17 of a core (waiting, not
working); in processes of their own, 98% full, and 694x real time against 612x (bench/README.md,
"Seventh session"). Here each engine gets a spawned process, which holds an ordinary one-engine
SpeechEngine and sends back each take as it finishes; this process only gathers takes.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from renderer.book import Chunk, RendererError, Take, first_line

POLL_S = 1.0  # how often a wait for a take checks that the engines' processes are alive
STOP_S = 30.0  # how long a stopping engine process is given to shut its engine down


def _main(model: str, options, index: int, turn, requests, results) -> None:
    """An engine process: load what an engine needs, wait for `turn` (an Event), start the engine,
    say so, then render each list of chunks asked for, sending ("take", index, (position in the
    list, codes, finished, attempts, steps)) for each take and ("done", index, None) after the last.
    Errors go back as ("error", index, one line)."""
    from renderer.speech.engine import SpeechEngine, engine_environment

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the engine is shut down on the way out
    threading.Thread(target=_end_with_parent, daemon=True).start()
    try:
        import setproctitle

        setproctitle.setproctitle(f"renderer::EngineFrontend_{index}")  # named apart from the chapter workers
    except ImportError:
        pass
    if options.engine_core_inline:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:  # vLLM's slow imports, while the engines before this one start (a failure shows again below)
        engine_environment()
        from vllm import LLM  # noqa: F401 - `import vllm` alone leaves about 5 s of LLM's imports for later
    except Exception:  # noqa: BLE001, S110
        pass
    try:  # transformers and the tokenizer load before this engine's turn: only the engine waits for the one before
        engine = SpeechEngine(model, options, before_engines=turn.wait)
    except RendererError as err:
        results.put(("error", index, str(err)))
        return
    except Exception as err:  # noqa: BLE001 - whatever vLLM raises, the user gets one line
        results.put(("error", index, f"{model}: the speech model could not be started: {first_line(err)}"))
        return
    try:
        results.put(("ready", index, None))
        while (chunks := requests.get()) is not None:
            position = {id(chunk): k for k, chunk in enumerate(chunks)}
            for take in engine.in_turn([chunks]):  # in the order given: the parent dealt them in waves
                results.put(("take", index, (position[id(take.chunk)], take.codes, take.finished, take.attempts,
                                             take.steps)))
            results.put(("done", index, None))
    except RendererError as err:
        results.put(("error", index, str(err)))
    except Exception as err:  # noqa: BLE001
        results.put(("error", index, f"{model}: the speech engine stopped: {first_line(err)}"))
    finally:
        engine.close()


def _end_with_parent() -> None:
    """Stop this engine process once the render that started it is gone (kill -9 leaves no engine
    holding the GPU): the parent's end closes the pipe that multiprocessing keeps to it."""
    multiprocessing.parent_process().join()
    os.kill(os.getpid(), signal.SIGTERM)


class EngineProcesses:
    """`count` one-engine processes, engine k on gpus[k % len(gpus)] (None: as this process sees
    them), each with `share` of its GPU's memory. The processes start together and load their
    libraries side by side; their engines start one after another (vLLM sizes its memory from what
    is free), the first once before_engines() returns, each other when the one before is up.
    started_at, ready_at: time.monotonic() of each process's start and its engine's."""

    def __init__(self, model: str, options, count: int, gpus: list[str | None], share: float,
                 before_engines: Callable[[], object] = lambda: None):
        from renderer.speech.engine import EngineError, _only_gpu

        self.model = model
        context = multiprocessing.get_context("spawn")
        self.results = context.Queue()
        self.requests = []
        self.processes = []
        self.busy: set[int] = set()  # rendering a share
        self.started_at: list[float] = []
        self.ready_at: list[float] = []
        one = replace(options, replicas=1, data_parallel=1, gpu_memory_utilization=share, engine_processes=False)
        turns = [context.Event() for _ in range(count)]
        try:
            for k in range(count):
                self.requests.append(context.Queue())
                process = context.Process(target=_main, args=(model, one, k, turns[k], self.requests[k], self.results),
                                          name=f"renderer-engine-{k}")
                with _only_gpu(gpus[k % len(gpus)]):  # read by the child (and its engine core) as it starts
                    process.start()
                self.processes.append(process)
                self.started_at.append(time.monotonic())
            before_engines()
            for k in range(count):
                turns[k].set()
                kind, _, payload = self._next({k})
                if kind == "error":
                    raise EngineError(payload)
                self.ready_at.append(time.monotonic())
        except BaseException:
            self.close()
            raise

    def _next(self, busy: set[int]) -> tuple:
        """The next message from the processes; EngineError if one of `busy` died without a word."""
        from renderer.speech.engine import EngineError

        while True:
            try:
                return self.results.get(timeout=POLL_S)
            except queue.Empty:
                for k in busy:
                    if not self.processes[k].is_alive():
                        raise EngineError(f"{self.model}: engine process {k} stopped (exit code "
                                          f"{self.processes[k].exitcode}); finished chunks are kept") from None

    def in_turn(self, shares: list[list[Chunk]]) -> Iterator[Take]:
        """Engine k renders shares[k]; each take yielded as it arrives, with the chunk given here."""
        from renderer.speech.engine import EngineError

        self.busy = {k for k, share in enumerate(shares) if share}
        for k in self.busy:
            self.requests[k].put(shares[k])
        while self.busy:
            kind, k, payload = self._next(self.busy)
            if kind == "take":
                position, codes, finished, attempts, steps = payload
                yield Take(chunk=shares[k][position], codes=codes, finished=finished, attempts=attempts, steps=steps)
            elif kind == "done":
                self.busy.discard(k)
            elif kind == "error":
                raise EngineError(payload)

    def close(self) -> None:
        """Stop the processes: an idle one when asked, one still rendering (its takes no longer
        wanted) or still waiting for its turn to start by SIGTERM; either shuts its engine down on the
        way out, or is killed if it lingers."""
        for k, process in enumerate(self.processes):
            if k in self.busy or k >= len(self.ready_at):
                process.terminate()
            else:
                self.requests[k].put(None)
        for process in self.processes:
            process.join(timeout=STOP_S)
            if process.is_alive():
                process.kill()
                process.join()
        self.processes.clear()
        self.busy.clear()
