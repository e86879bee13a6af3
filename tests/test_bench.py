"""The benchmark plumbing that runs on the device machine: a session's case file, and merging the
rows it brings back into bench/results (the benchmarks themselves need the GPU)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def test_merge_adds_a_sessions_rows_and_keeps_each_tables_columns(tmp_path):
    into = tmp_path / "results"
    shutil.copytree(RESULTS, into)
    before = (into / "render.md").read_text()
    count = len(json.loads((into / "render.json").read_text()))
    back = tmp_path / "back" / "results" / "case-a"  # as session.sh's tarball unpacks
    back.mkdir(parents=True)
    (back / "render.json").write_text(json.dumps([{"date": "2026-12-01", "case": "a new case", "chunks": 7,
                                                   "peak_gib_by_gpu": {"0": 1.0}}]))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "results_table.py"), "merge", str(tmp_path / "back"),
                             "--into", str(into)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    after = (into / "render.md").read_text()
    assert after.startswith(before)  # the header, the columns and every earlier row as they were
    added = after[len(before):].splitlines()
    assert len(added) == 1 and "| 2026-12-01 |" in added[0] and "| a new case |" in added[0]
    assert added[0].count("|") == before.splitlines()[-1].count("|")
    assert len(json.loads((into / "render.json").read_text())) == count + 1
    assert (into / "codec.md").read_text() == (RESULTS / "codec.md").read_text()  # nothing came back for it
    again = subprocess.run(result.args, capture_output=True, text=True, check=False)  # merged twice: added once
    assert again.returncode == 0 and "0 row(s) added" in again.stdout
    assert (into / "render.md").read_text() == after


def test_merge_of_a_folder_without_results_says_so(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "results_table.py"), "merge", str(tmp_path),
                             "--into", str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "no results found in" in result.stderr


def test_session_refuses_an_unknown_kind_of_case_by_its_line(tmp_path):
    cases = tmp_path / "next.cases"
    cases.write_text("# a comment, then a blank line\n\nbogus first 10 --x\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "codec.nemo").touch()  # models already there: none built
    env = {"PATH": "/usr/bin:/bin", "BENCH_MODELS": str(tmp_path / "models"), "BENCH_RESULTS": str(tmp_path / "r"),
           "OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu" / "session.sh"), str(cases)], capture_output=True,
                            text=True, check=False, env=env, cwd=ROOT)
    assert result.returncode == 2
    assert f"{cases}: unknown kind 'bogus'" in result.stderr


def test_session_runs_only_the_named_cases_each_as_its_last_line(tmp_path):
    cases = tmp_path / "next.cases"
    cases.write_text("kernel sweep 60 --old-flag\n"  # an older block's case of the same name
                     "kernel other 60 --help\n"
                     "# a later block\n"
                     "kernel sweep 60 --help\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "codec.nemo").touch()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "BENCH_MODELS": str(tmp_path / "models"),
           "BENCH_RESULTS": str(tmp_path / "r"), "OUT": str(tmp_path / "out")}

    def session(*names):
        return subprocess.run(["bash", str(ROOT / "bench" / "gpu" / "session.sh"), str(cases), *names],
                              capture_output=True, text=True, check=False, env=env, cwd=ROOT)

    result = session("sweep")
    assert result.returncode == 0, result.stderr
    marks = (tmp_path / "r" / "marks").read_text()
    assert "sweep rc=0 at" in marks and "other" not in marks  # the later line's --help, not --old-flag (rc 2)
    result = session("sweep", "nothing-of-that-name")
    assert result.returncode == 2 and f"{cases}: no case named nothing-of-that-name" in result.stderr


def test_session_runs_each_case_under_its_limit_and_ships_after_each(tmp_path):
    import tarfile

    cases = tmp_path / "next.cases"
    cases.write_text('test none 60 -k "no_such_test"\n'
                     'PYTEST_ADDOPTS=--co test listed 20\n'  # a setting for this case only: list, not run
                     'test slow 0.01 --co tests/test_text.py\n'
                     'kernel sweep 60 --help\n')  # the kernel sweep's own script, here only its usage
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "codec.nemo").touch()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "BENCH_MODELS": str(tmp_path / "models"),
           "BENCH_RESULTS": str(tmp_path / "r"), "OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu" / "session.sh"), str(cases)], capture_output=True,
                            text=True, check=False, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    marks = (tmp_path / "r" / "marks").read_text()
    assert "none rc=5 at" in marks  # pytest: nothing selected
    assert "listed rc=0 at" in marks  # the GPU tests only listed, as its setting asked
    assert "slow rc=124 at" in marks  # the second case ran past its 0.01-s limit, and the loop went on
    assert "sweep rc=0 at" in marks and "--apart" in (tmp_path / "r" / "sweep.log").read_text()
    with tarfile.open(tmp_path / "out" / "results.tgz") as shipped:
        names = shipped.getnames()
    assert {"r/marks", "r/none.log", "r/listed.log", "r/slow.log"} <= set(names)


def test_waves_counts_the_steps_of_continuous_batching():
    sys.path.insert(0, str(ROOT / "bench"))
    from waves import engine_steps

    # Two slots: 3 and 1 tokens start; the 1 ends at step 1 and the next 1 takes its slot to step 2; the 3 ends at 3.
    # Steps 0 and 1 admit a sequence (its prompt's prefill beside the others' decoding).
    assert engine_steps([3, 1, 1], slots=2) == (3, 5 / 3, 2)
    assert engine_steps([], slots=2) == (0, 0.0, 0)


def test_the_bench_books_copies_share_no_chunk_and_keep_its_length():
    sys.path.insert(0, str(ROOT / "bench"))
    from render_bench import repeated

    from renderer.book import Voice
    from renderer.read import read_book
    from renderer.text.chunk import chunk_book

    book = read_book(ROOT / "samples" / "moby-dick-opening.md")
    voice = Voice("en", "andrew", "model", "codec")
    once, copies = chunk_book(book, voice), chunk_book(repeated(book, 12), voice)
    assert len({c.text for c in copies}) == len(copies)  # every chunk made, none a take stored by another copy
    spoken = [c.text for c in copies[:len(once)] if not c.is_title]  # titles gain their copy's number
    assert spoken == [c.text for c in once if not c.is_title]  # the first copy is the book itself
    assert abs(sum(c.seconds for c in copies) / sum(c.seconds for c in once) - 12) < 0.12  # titles grow a little


def test_py_spy_top_names_each_sample_by_the_process_sampled(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from py_spy_top import read

    render = 'process 10:"python bench/render_bench.py --case a; b"'
    worker = 'process 12:"python -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=3)"'
    stacks = tmp_path / "py-spy.txt"
    stacks.write_text(f'{render};thread (10): MainThread;main (render.py:1) 5\n'
                      f'{render};process 11:"VLLM::EngineCore";thread (11): MainThread;step (core.py:2);_sample (frames.py:3) 7\n'
                      f'{render};{worker};thread (12): MainThread;master (loudness.py:4) 3\n')
    got = {key: [(frames, n) for frames, n in group] for key, group in read(stacks).items()}
    assert got == {("render (driver, decoder) 10", "thread (10): MainThread"): [(["main (render.py:1)"], 5)],
                   ("engine cores 11", "thread (11): MainThread"): [(["step (core.py:2)", "_sample (frames.py:3)"], 7)],
                   ("chapter workers 12", "thread (12): MainThread"): [(["master (loudness.py:4)"], 3)]}


def test_session_runs_a_case_under_mps_when_asked(tmp_path):
    """MPS=1: the daemon is started before the case, with its pipes where the case's processes look,
    and told to quit after it (a stand-in for nvidia-cuda-mps-control records what it was asked)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "calls"
    fake = tools / "nvidia-cuda-mps-control"
    fake.write_text(f'#!/bin/bash\necho "$* ${{CUDA_MPS_PIPE_DIRECTORY:-none}} $(cat -)" >> {calls}\n')
    fake.chmod(0o755)
    cases = tmp_path / "next.cases"
    cases.write_text('MPS=1 test under 60 -k "no_such_test"\ntest after 60 -k "no_such_test"\n')
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "codec.nemo").touch()
    env = {"PATH": f"{tools}:{Path(sys.executable).parent}:/usr/bin:/bin", "BENCH_MODELS": str(tmp_path / "models"),
           "BENCH_RESULTS": str(tmp_path / "r"), "OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu" / "session.sh"), str(cases)], capture_output=True,
                            text=True, check=False, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    pipes = tmp_path / "r" / "under.mps" / "pipe"
    assert calls.read_text().splitlines() == [f"-d {pipes} ", f" {pipes} quit"]
    marks = [line.split(" at ")[0] for line in (tmp_path / "r" / "marks").read_text().splitlines()]
    assert marks == ["under MPS on", "under start", "under rc=5", "under MPS off", "after start", "after rc=5"]


def test_decoding_as_they_came_is_one_padded_batch_a_hand_over(tiny_models, monkeypatch):
    import numpy as np

    from renderer import codec as codec_module
    from renderer import render
    from renderer.codec import load_codec

    for module, name in ((codec_module, "PAD_FRAMES"), (codec_module, "batches_by_frames"),
                         (render, "DECODE_TOGETHER_FRAMES")):
        monkeypatch.setattr(module, name, getattr(module, name))  # put back after the test
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from codec_bench import AS_THEY_CAME_FRAMES, decode_as_they_came

    decode_as_they_came()
    codec = load_codec(str(tiny_models[1]), device="cpu")
    rng = np.random.default_rng(0)
    audio = codec.decode([rng.integers(0, 4032, size=(4, n)) for n in (30, 3, 12)])
    assert [len(a) for a in audio] == [n * codec_module.SAMPLES_PER_FRAME for n in (30, 3, 12)]
    assert (codec.frames, codec.padded) == (45, 3 * 50)  # one batch, padded to 4 s
    assert render.DECODE_TOGETHER_FRAMES == AS_THEY_CAME_FRAMES


def test_the_decoders_counted_work_is_what_torch_counts(tiny_models, monkeypatch):
    import numpy as np
    from torch.utils.flop_counter import FlopCounterMode

    from renderer.codec import load_codec

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from codec_bench import stage_times, work_by_stage, work_table

    codec = load_codec(str(tiny_models[1]), device="cpu")
    stages = work_by_stage(codec, frames=20)
    counter = FlopCounterMode(display=False)
    with counter:
        codec.decode([np.zeros((4, 20), np.int64)])
    assert sum(stage[0] for stage in stages.values()) * 1e9 * 20 == pytest.approx(counter.get_total_flops(), rel=1e-9)
    assert max(stages) == 1764  # the last stage writes the audio's samples
    assert work_table(stages).splitlines()[-1].startswith("| all | | ")
    steps = stage_times(codec, rows=2, frames=20, repeat=1)  # each step alone, with its share of the same work
    assert [row["step"] for row in steps] == ["dequantize", "first convolution", *(f"stage {k}" for k in range(1, 6)),
                                              "last convolution"]
    assert sum(row["gflop_per_frame"] for row in steps) == pytest.approx(sum(s[0] for s in stages.values()), rel=1e-3)
    assert sum(row["share"] for row in steps) == pytest.approx(1, abs=0.01)


def test_the_mix_profile_sums_cudnns_kernels_by_the_convolution_that_ran_them(monkeypatch):
    """As torch's profiler hands its events over: a kernel hangs off the runtime call (a child of the convolution's
    op) that launched it; other ops' kernels are not counted."""
    from types import SimpleNamespace as Event

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import mix_profile

    def kernel(name, us):
        return Event(name=name, device=0, duration=us)

    launch = Event(name="cudaLaunchKernel", kernels=[kernel("implicit_convolve_sgemm", 2100.0)], cpu_children=[])
    conv = Event(name="aten::cudnn_convolution", input_shapes=[[8, 432, 1, 280], [432, 432, 1, 11], []],
                 kernels=[kernel("nchwToNhwcKernel", 40.0)], cpu_children=[launch])
    other = Event(name="aten::add_", input_shapes=[[8, 432, 280]], kernels=[kernel("add", 9000.0)], cpu_children=[])
    again = Event(name="aten::cudnn_convolution", input_shapes=[[8, 432, 1, 280], [432, 432, 1, 11]],
                  kernels=[kernel("implicit_convolve_sgemm", 1900.0)], cpu_children=[])
    lines = mix_profile.cudnn_kernels([conv, other, again])
    assert lines == ["    4.00 ms, 2 calls: implicit_convolve_sgemm on (8, 432, 1, 280) by (432, 432, 1, 11)",
                     "    0.04 ms, 1 calls: nchwToNhwcKernel on (8, 432, 1, 280) by (432, 432, 1, 11)"]


def test_the_mix_profile_times_each_batch_and_names_the_slowest(tiny_models, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import mix_profile

    monkeypatch.setattr(sys, "argv", ["mix_profile.py", "--codec", str(tiny_models[1]), "--cases", "fp32:eager",
                                      "--takes", "3"])
    mix_profile.main()
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("## "))  # after NeMo's own lines
    assert head.startswith("## fp32:eager: ") and " batches, each alone " in head and head.endswith("x")
    counted = sum(int(line.split(": ")[1].split(" batches")[0]) for line in out.splitlines() if line.startswith("  rows "))
    assert counted == int(head.split(": ")[1].split(" batches")[0])  # every batch in one row group
    assert "the slowest a frame" in out and "by input shape" in out and "profiled pass: wall " in out
    assert "cuDNN's kernels by the convolution that ran them" in out  # on the CPU: none
