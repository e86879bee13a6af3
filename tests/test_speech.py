"""KaniTTS's token layout and the real vLLM engine (CPU build) on the tiny random model."""
from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from renderer.book import Chunk, Voice
from renderer.codec import CODEBOOK_SIZE
from renderer.speech import engine as engine_module
from renderer.speech import kani
from renderer.speech.engine import EngineError, EngineOptions, SpeechEngine, _only_gpu, chunk_seed, to_admit, wave_order


def test_prompt_is_laid_out_as_trained():
    ids = kani.prompt_ids([kani.START_OF_TEXT, 500, 501])
    assert ids == [kani.START_OF_HUMAN, kani.START_OF_TEXT, 500, 501, kani.END_OF_TEXT, kani.END_OF_HUMAN,
                   kani.START_OF_AI, kani.START_OF_SPEECH]
    assert kani.speaker_text("Hello.", "katie") == "katie: Hello."
    assert kani.speaker_text("Hello.", None) == "Hello."


def test_token_layout_constants():
    assert kani.AUDIO_TOKEN_BASE == 64410
    assert kani.AUDIO_TOKEN_END == 80538  # the model's vocabulary
    assert kani.TOKENS_PER_SECOND == 50
    assert kani.audio_token(3, 4031) == kani.AUDIO_TOKEN_END - 1


def test_answer_codes_reads_frames_and_stops_at_end_of_speech():
    frames = [[1, 2, 3, 4], [4031, 0, 7, 9]]
    ids = [kani.audio_token(k, c) for frame in frames for k, c in enumerate(frame)]
    codes, finished = kani.answer_codes(ids + [kani.END_OF_SPEECH, kani.END_OF_AI])
    assert finished
    assert codes.shape == (4, 2) and codes.dtype == np.int64
    assert codes[:, 1].tolist() == frames[1]
    codes, finished = kani.answer_codes(ids + ids[:3])  # cut mid-frame: the partial frame is dropped
    assert not finished and codes.shape == (4, 2)
    with pytest.raises(ValueError):
        kani.answer_codes([kani.audio_token(1, 5)] * 4)  # codebook 1 in position 0


def test_max_new_tokens_is_whole_frames_plus_end():
    assert kani.max_new_tokens(2.0, 1.0) == 25 * 4 + 1
    assert kani.max_new_tokens(2.0, 2.0) == 50 * 4 + 1


def test_chunk_seed_depends_on_text_voice_and_attempt():
    voice = Voice("en", "andrew", "m", "c")
    a = Chunk(1, 0, 0, "Hello there.", voice, seconds=1.0)
    b = Chunk(2, 5, 9, "Hello there.", voice, seconds=1.0)  # same words elsewhere in the book
    assert chunk_seed(a, 0, 0) == chunk_seed(b, 0, 0)
    assert chunk_seed(a, 0, 0) != chunk_seed(a, 1, 0)
    assert chunk_seed(a, 0, 0) != chunk_seed(Chunk(1, 0, 0, "Hello there!", voice, seconds=1.0), 0, 0)
    assert 0 <= chunk_seed(a, 0, 0) < 2**31


def test_wave_order_keeps_the_book_order_a_wave_at_a_time_longest_first():
    voice = Voice("en", "andrew", "m", "c")
    seconds = [5, 12, 8, 15, 6, 9, 14, 7]
    chunks = [Chunk(1, i, i, f"Sentence {i}.", voice, seconds=float(s)) for i, s in enumerate(seconds)]
    order = [c.index for c in wave_order(chunks, 3)]
    assert order == [1, 0, 3, 2, 4, 6, 5, 7]  # waves 0-1, 2-4, 5-7 (the last full), each longest first
    assert [c.index for c in wave_order(chunks, 4)] == [3, 1, 2, 0, 6, 5, 7, 4]
    assert wave_order([], 3) == []
    assert [c.index for c in wave_order(chunks, 100)] == [3, 6, 1, 5, 2, 7, 4, 0]


def test_data_parallel_names_each_gpu_as_its_engine_process_will_see_it(monkeypatch):
    """The GPUs an engine may be put on, as CUDA_VISIBLE_DEVICES names them (a two-GPU host is
    pretended here; tests/test_gpu.py starts engines on two real ones)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # this process sees physical GPUs 3 and 5
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # engine cores in processes of their own
    assert EngineOptions(data_parallel=0).gpus_to_use() == ["3", "5"]
    assert EngineOptions().gpus_to_use() == ["3"]
    with pytest.raises(EngineError, match="--data-parallel 4: only 2 GPU"):
        EngineOptions(data_parallel=4).gpus_to_use()
    with _only_gpu("5"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert EngineOptions(data_parallel=2).gpus_to_use() == ["0", "1"]
    with _only_gpu("1"):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engines: CUDA_VISIBLE_DEVICES is moot
    with pytest.raises(EngineError, match="--data-parallel 2: VLLM_ENABLE_V1_MULTIPROCESSING=0 keeps every engine"):
        EngineOptions(data_parallel=2).gpus_to_use()
    assert EngineOptions(data_parallel=1).gpus_to_use() == ["0"]


@pytest.mark.parametrize(("card_gib", "share", "engines"), [(8, 0.5, 1), (24, 0.5, 2), (80, 0.5, 3), (141, 0.9, 3)])
def test_engines_by_default_are_as_many_as_the_cards_share_holds(monkeypatch, card_gib, share, engines):
    monkeypatch.setattr(engine_module, "_on_gpu", lambda: True)
    monkeypatch.setattr(engine_module, "gpu_memory_gib", lambda: card_gib)
    assert EngineOptions(gpu_memory_utilization=share).engines_to_start() == engines
    assert EngineOptions(gpu_memory_utilization=share, replicas=2).engines_to_start() == 2  # as asked
    # several engines on a GPU each run in a process of their own, unless told otherwise
    assert EngineOptions(gpu_memory_utilization=share).runs_engines_apart() == (engines > 1)
    assert not EngineOptions(gpu_memory_utilization=share, engine_processes=False).runs_engines_apart()


@pytest.mark.parametrize(("card_gib", "share", "threads"), [(8, 0.5, 1), (24, 0.5, 1), (80, 0.5, 2), (141, 0.5, 2),
                                                           (141, 0.9, 1)])
def test_decoding_threads_by_default_are_as_many_as_the_codecs_share_holds(monkeypatch, card_gib, share, threads):
    monkeypatch.setattr(engine_module, "_on_gpu", lambda: True)
    monkeypatch.setattr(engine_module, "gpu_memory_gib", lambda: card_gib)
    assert EngineOptions(gpu_memory_utilization=share).decode_threads_on_each_gpu() == threads
    assert EngineOptions(gpu_memory_utilization=share, decode_threads=3).decode_threads_on_each_gpu() == 3  # as asked
    # torch.compile is not thread-safe: one thread, whatever was asked
    assert EngineOptions(decode_threads=3, compile_codec=True).decode_threads_on_each_gpu() == 1
    monkeypatch.setattr(engine_module, "_on_gpu", lambda: False)
    assert EngineOptions().decode_threads_on_each_gpu() == 1


def test_engines_on_the_cpu_run_in_this_process_unless_told_otherwise():
    assert not EngineOptions(replicas=2).runs_engines_apart()
    assert EngineOptions(engine_processes=True).runs_engines_apart()


def test_missing_model_folder_is_one_clear_line(tmp_path):
    with pytest.raises(EngineError, match="no such model folder"):
        SpeechEngine(str(tmp_path / "nope"))


def test_unreachable_hub_model_is_one_clear_line():
    with pytest.raises(EngineError) as err:
        SpeechEngine("nineninesix/kani-tts-400m-en")  # HF_HUB_OFFLINE=1: the hub cannot be reached
    assert "nineninesix/kani-tts-400m-en" in str(err.value) and "\n" not in str(err.value)


@pytest.fixture(scope="module")
def engine(tiny_models):
    speech = SpeechEngine(str(tiny_models[0]), EngineOptions(retries=1, enforce_eager=True, max_num_seqs=8))
    yield speech
    speech.close()  # left open, later in-process renders made other codes than a fresh process (test_resume after this file)


def _chunks(model: str, texts: list[str]) -> list[Chunk]:
    voice = Voice("en", "andrew", model, "unused")
    return [Chunk(1, i, i, text, voice, seconds=0.4 + 0.2 * i) for i, text in enumerate(texts)]


def test_engine_renders_well_formed_takes_and_retries_runaways(engine, tiny_models):
    chunks = _chunks(str(tiny_models[0]), ["One.", "Two words.", "Three words here."])
    takes = list(engine.takes(chunks))
    assert sorted(t.chunk.index for t in takes) == [0, 1, 2]
    for take in takes:
        budget = (kani.max_new_tokens(take.chunk.seconds, engine.options.length_margin) - 1) // 4
        assert take.codes.shape[0] == 4 and take.codes.shape[1] <= budget
        assert take.codes.min() >= 0 and take.codes.max() < CODEBOOK_SIZE
        if not take.finished:  # random weights: a runaway, retried once with a new seed
            assert take.attempts == 2 and take.codes.shape[1] == budget


def test_engine_hands_over_chunks_together_as_slots_free_up(engine, tiny_models, monkeypatch):
    monkeypatch.setattr(engine_module, "ADMIT_TOGETHER", 3)
    monkeypatch.setattr(engine, "options", dataclasses.replace(engine.options, retries=0))  # one attempt each
    chunks = _chunks(str(tiny_models[0]), [f"Line number {i}." for i in range(14)])  # 8 slots: 6 wait
    takes = list(engine.takes(chunks))
    assert sorted(t.chunk.index for t in takes) == list(range(14))
    queued = collections.Counter(t.steps[0] for t in takes)  # the step each was handed over at
    groups = [queued[step] for step in sorted(queued)]
    assert groups[0] == 8 and sum(groups) == 14
    assert all(n >= 3 for n in groups[1:-1]) and len(groups) > 1  # the last group may be what was left


def test_to_admit_waits_for_enough_free_slots_then_fills_them():
    assert to_admit(free=5, slots=16, waiting=10, together=8) == 0  # 8 must be free first
    assert to_admit(free=9, slots=16, waiting=10, together=8) == 9  # then every free slot is filled
    assert to_admit(free=3, slots=16, waiting=2, together=8) == 2  # the last few need not wait for 8
    assert to_admit(free=2, slots=2, waiting=10, together=8) == 2  # fewer slots than 8: all of them
    assert to_admit(free=16, slots=16, waiting=0, together=8) == 0


def test_an_engine_with_fewer_slots_than_go_together_still_takes_every_chunk(engine, tiny_models, monkeypatch):
    monkeypatch.setattr(engine_module, "ADMIT_TOGETHER", 16)  # more than its 8 slots
    monkeypatch.setattr(engine, "options", dataclasses.replace(engine.options, retries=0))
    chunks = _chunks(str(tiny_models[0]), [f"Line number {i}." for i in range(10)])
    assert sorted(t.chunk.index for t in engine.takes(chunks)) == list(range(10))


SAME_SEED_SHARE = 0.5  # of codes, at least, in two renders of the same chunks (another seed: 1 in 4,032)


def _share_of_same_codes(one: dict, two: dict) -> float:
    """How many codes two renders of the same chunks share. Not bit for bit: the logits of a row shift
    slightly with the batch around it, and the tiny model's are near ties, so some codes flip (those
    after a flip mostly agree again: the sampling noise is keyed by seed and position). Two processes
    against one batch shared 0.73 to 0.95 of their codes; another seed would share 1 in 4,032."""
    assert sorted(two) == sorted(one)
    same = sum(int((codes == two[index]).sum()) for index, codes in one.items() if codes.shape == two[index].shape)
    return same / sum(codes.size for codes in one.values())


def test_engine_is_reproducible_per_chunk(engine, tiny_models):
    chunks = _chunks(str(tiny_models[0]), ["Same text, same seed.", "Another line."])
    first = {t.chunk.index: t.codes for t in engine.takes(chunks)}
    again = {t.chunk.index: t.codes for t in engine.takes(chunks[::-1])}  # other order, other batch rows
    assert _share_of_same_codes(first, again) >= SAME_SEED_SHARE


def test_engines_in_their_own_processes_make_the_same_takes_and_stop(engine, tiny_models):
    """engine_processes: each engine and its vLLM frontend run in a spawned process, all started
    together, their engines one after another; the takes come back with the caller's chunks, follow
    their seeds as here, and an abandoned render is stopped."""
    chunks = _chunks(str(tiny_models[0]), ["First of four.", "Second one.", "Third here.", "And the fourth."])
    here = {t.chunk.index: t.codes for t in engine.takes(chunks)}
    apart = SpeechEngine(str(tiny_models[0]), dataclasses.replace(engine.options, engine_processes=True, replicas=2))
    processes = list(apart.processes.processes)
    try:
        assert not apart.llms and len(processes) == 2 and all(p.is_alive() for p in processes)
        started, ready = apart.processes.started_at, apart.processes.ready_at
        assert started[1] < ready[0] < ready[1]  # the second loaded its libraries while the first engine started
        takes = list(apart.takes(chunks))
        assert sorted(map(id, (t.chunk for t in takes))) == sorted(map(id, chunks))  # the caller's own chunks
        abandoned = apart.takes(chunks)
        next(abandoned)  # the rest still rendering in the processes
    finally:
        apart.close()
    assert [p.exitcode for p in processes] == [0, 0]  # stopped, each engine shut down on the way out
    assert _share_of_same_codes(here, {t.chunk.index: t.codes for t in takes}) >= SAME_SEED_SHARE


def test_an_engine_process_that_cannot_start_is_one_clear_line(tiny_models, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "lots")  # read by the engine as it starts, in the process
    with pytest.raises(EngineError, match="the speech model could not be started") as err:
        SpeechEngine(str(tiny_models[0]), EngineOptions(enforce_eager=True, max_num_seqs=8, engine_processes=True,
                                                        replicas=2))
    assert "\n" not in str(err.value)
    assert not multiprocessing.active_children()  # the second, still waiting for its turn, stopped too


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, whose parent has not reaped it, counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_engine_processes_end_when_the_render_is_killed(tiny_models):
    """kill -9 of the render leaves no engine process behind (on a GPU it would hold its memory)."""
    script = ("from renderer.speech.engine import EngineOptions, SpeechEngine\n"
              f"engine = SpeechEngine({str(tiny_models[0])!r}, EngineOptions(enforce_eager=True, max_num_seqs=8, "
              "engine_processes=True))\n"
              "print('pids', *(p.pid for p in engine.processes.processes), flush=True)\n"
              "import time; time.sleep(600)\n")
    render = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:  # vLLM's engine logs to the same stdout
        pids = next([int(pid) for pid in line.split()[1:]] for line in render.stdout if line.startswith("pids "))
    finally:
        render.kill()
        render.wait()
    assert len(pids) == 1
    deadline = time.monotonic() + 60
    while any(map(_running, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_running, pids))


@pytest.mark.slow  # two more engines to start; the GPU benchmark runs replicas for real
def test_replicas_share_the_chunks_and_make_the_same_takes(engine, tiny_models):
    """Two engines side by side render what one does: each take follows its own seed. Last in this file:
    closing an in-process engine tears down vLLM's process-wide parallel groups, which the module's shared
    engine (still open) needs."""
    chunks = _chunks(str(tiny_models[0]), ["First of four.", "Second one.", "Third here.", "And the fourth."])
    one = {t.chunk.index: t.codes for t in engine.takes(chunks)}
    pair = SpeechEngine(str(tiny_models[0]), dataclasses.replace(engine.options, replicas=2))
    try:
        assert len(pair.llms) == 2
        two = {t.chunk.index: t.codes for t in pair.takes(chunks)}
    finally:
        pair.close()
    assert _share_of_same_codes(one, two) >= SAME_SEED_SHARE
