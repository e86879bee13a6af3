"""Rendering on Ray, on the CPU with the tiny models: a local Ray started by the run renders a
two-book job file for file as the one-process path does (the same per-chunk seeds); a later
`render jobs run --ray` redecodes a deleted chapter from the stored takes without generating."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import assert_same_files, stored, write_books

from renderer.cli import main
from renderer.cluster import RayOptions
from renderer.jobs import JobState, load_job, run_job

BOOKS = {
    "lantern.md": "# Lantern\n\n## Night\n\nThe lantern swung in the wind.\n\nA dog barked twice.\n",
    "meadow.md": "# Meadow\n\n## Noon\n\nBees worked the clover.\n\n## Dusk\n\nThe cows walked home slowly.\n",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_models) -> Path:
    """books/ with the two books; jobs/plain.toml and jobs/ray.toml rendering them into plain/ and ray/."""
    root = tmp_path_factory.mktemp("cluster")
    write_books(root, BOOKS)
    (root / "jobs").mkdir()
    model, codec = tiny_models
    for name in ("plain", "ray"):
        (root / "jobs" / f"{name}.toml").write_text(
            f'inputs = ["../books/*.md"]\nout = "../{name}"\nvoice = "en"\n'
            f'[engine]\nmodel = "{model}"\ncodec = "{codec}"\nkeep-runaways = true\nretries = 0\n')
    return root


def run(folder: Path, name: str, cluster: RayOptions | None):
    with JobState(folder / "jobs") as state:
        return run_job(load_job(folder / "jobs" / f"{name}.toml"), state, cluster=cluster)


@pytest.fixture(scope="module")
def rendered(folder):
    """The job rendered in this process, then on a local Ray that the run starts and stops."""
    return run(folder, "plain", None), run(folder, "ray", RayOptions())


def test_ray_renders_a_two_book_job_as_one_process_does(rendered, folder):
    plain, ray = rendered
    assert not plain.failed and not ray.failed
    assert ray.render.engines == [plain.render.engines[0]]  # one speech actor, one engine
    assert ray.render.seconds["engine_start"] > 0 and ray.render.seconds["decode"] > 0
    assert ray.render.tokens == plain.render.tokens
    for run in (plain.render, ray.render):  # the actors' own stamps on Ray, in the order things happen
        m = run.marks
        assert set(m) == {"codecs_ready", "engines_ready", "first_made", "last_made", "last_decoded", "last_arrived"}
        assert 0 < m["engines_ready"] <= m["first_made"] <= m["last_made"] <= m["last_decoded"] <= m["last_arrived"]
        assert m["last_arrived"] <= run.seconds["total"]
    for book in BOOKS:
        report = next(r.report for r in ray.render.books if r.book.path.name == book)
        assert report.rendered == report.chunks and report.reused == 0
        assert_same_files(folder / "ray" / Path(book).stem, folder / "plain" / Path(book).stem)


def test_ray_rerun_decodes_stored_takes_without_generating(rendered, folder):
    book = folder / "ray" / "meadow"
    first = min(book.glob("*.wav"))
    kept = shutil.copy(first, folder / "kept.wav")
    takes = stored(book)
    first.unlink()
    result = CliRunner().invoke(main, ["jobs", "--jobs-dir", str(folder / "jobs"), "run", "ray", "--quiet", "--ray"])
    assert result.exit_code == 0, result.output[-2000:]
    assert first.is_file() and stored(book) == takes  # no take regenerated or rewritten
    now, then = soundfile.read(first, dtype="int16")[0], soundfile.read(kept, dtype="int16")[0]
    assert now.shape == then.shape
    np.testing.assert_allclose(now, then, atol=2, rtol=0)
    assert "0 engine(s) started" in result.output


def test_ray_address_that_cannot_be_reached_is_one_line(folder, tiny_models, tmp_path):
    model, codec = tiny_models
    result = CliRunner().invoke(main, [str(folder / "books" / "lantern.md"), "--out", str(tmp_path / "out"), "--quiet",
                                       "--model", str(model), "--codec", str(codec), "--ray", "127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Ray at 127.0.0.1:9: cannot connect") and result.output.count("\n") == 1


def test_an_engine_that_fails_in_its_actor_is_one_line(folder, tiny_models, tmp_path):
    model, codec = tiny_models
    broken = tmp_path / "kani"  # the model's config and tokenizer, but no weights
    shutil.copytree(model, broken, ignore=shutil.ignore_patterns("*.safetensors"))
    result = CliRunner().invoke(main, [str(folder / "books" / "lantern.md"), "--out", str(tmp_path / "out"), "--quiet",
                                       "--model", str(broken), "--codec", str(codec), "--ray"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {broken}: the speech model could not be started")
    assert result.output.count("\n") == 1


def test_serve_runs_each_job_on_ray(folder):
    """`serve --ray ADDRESS` hands the address to each run: here one nobody answers, so the due job's
    books fail with the one line that says so, and the scheduler goes on to stop by itself."""
    job = folder / "jobs" / "nightly.toml"
    text = (folder / "jobs" / "ray.toml").read_text().replace('out = "../ray"', 'out = "../nightly"')
    job.write_text('schedule = "* * * * * */2"\n' + text)  # every two seconds
    try:
        runner = CliRunner()
        result = runner.invoke(main, ["jobs", "--jobs-dir", str(folder / "jobs"), "serve", "--poll", "0.5", "--until",
                                      "60", "--max-runs", "1", "--ray", "127.0.0.1:9"])
        assert result.exit_code == 0, result.output[-2000:]
        assert "job nightly: 0 book(s) done, 2 failed" in result.output
        status = runner.invoke(main, ["jobs", "--jobs-dir", str(folder / "jobs"), "status", "nightly"]).output
        books = [line for line in status.splitlines() if line.startswith("  failed ")]  # one line a book
        assert len(books) == 2 and all("Ray at 127.0.0.1:9: cannot connect" in line for line in books), status
    finally:
        job.unlink()


def test_speech_actor_starts_its_engine_with_the_drivers_thread_setting_not_rays(monkeypatch, tmp_path):
    """Ray sets OMP_NUM_THREADS=1 in its workers; the engine process a speech actor spawns gets the
    setting of the process that started the run (none, or its own), as on the plain path."""
    from renderer.cluster import SpeechActor
    from renderer.speech.engine import EngineOptions

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as in a Ray worker
    actor = SpeechActor(str(tmp_path / "no-model"), EngineOptions(), omp_threads=None)
    assert "OMP_NUM_THREADS" not in os.environ
    assert "no such model folder" in str(actor.error)  # it went on to start the engine
    SpeechActor(str(tmp_path / "no-model"), EngineOptions(), omp_threads="6")
    assert os.environ["OMP_NUM_THREADS"] == "6"


def test_each_speech_actor_gets_a_batch_though_one_is_ready_first(tmp_path):
    """Two actors, two batches, the second actor ready seconds after the first: each takes one batch
    (with Ray Data's default, the first ready took both and the other engine sat idle)."""
    import time

    from renderer.cluster import _connect, _import_ray, speech_stage

    class LateSecond:
        def __init__(self, first: str):
            try:
                os.close(os.open(first, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                time.sleep(3)  # as a second engine still compiling

        def __call__(self, batch):
            time.sleep(6)  # generating, longer than the second one's start
            return {"pid": np.full(len(batch["id"]), os.getpid())}

    ray = _import_ray()
    started = _connect(ray, None)
    try:
        rows = ray.data.from_items([{"id": i} for i in range(8)])
        out = speech_stage(ray, rows, LateSecond, {"first": str(tmp_path / "first")}, 4, 2, {"num_cpus": 1})
        pids = [int(row["pid"]) for row in out.take_all()]
    finally:
        if started:
            ray.shutdown()
    assert len(pids) == 8 and len(set(pids)) == 2 and pids.count(pids[0]) == 4
