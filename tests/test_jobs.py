"""Batch jobs end to end on the tiny models: job files checked before anything runs, a job of two
books and a broken one rendered in one engine run (the books' chunks in the same batches), its
state read back by a new process, the scheduler running a due job and stopping by itself, missed
runs after a restart, and one run of a job at a time across schedulers.

One real render (module fixture) serves every test; the later runs find its books done.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
import soundfile
from click.testing import CliRunner
from conftest import BAD_EPUBS, ROOT, write_books

from renderer.cli import main
from renderer.jobs import MISSED, SCHEDULED, JobLock, JobState, due, load_job, next_run, run_job

BOOKS = {
    "harbour.md": "# Harbour\n\n## Dawn\n\nThe boats went out at dawn.\n\nThe gulls followed them home.\n",
    "orchard.md": "# Orchard\n\n## Autumn\n\nThe apples fell in the night.\n\nWe gathered them at noon.\n",
}
BROKEN = "broken.epub"  # a cut-off archive (see shared/fixtures/bad-epub/BAD.md)
DAY = 24 * 3600.0


def jobs(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["jobs", *[str(a) for a in args]])
    return result.exit_code, result.output


def job_text(tiny_models, *, inputs: str, schedule: str | None = None, extra: str = "") -> str:
    model, codec = tiny_models
    when = f'schedule = "{schedule}"\n' if schedule else ""
    return (f'{when}inputs = {inputs}\nout = "../out"\nvoice = "en"\n{extra}\n'
            f'[engine]\nmodel = "{model}"\ncodec = "{codec}"\nkeep-runaways = true\nretries = 0\n')


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_models) -> Path:
    """A jobs folder with job `library`: the two books and the broken one, beside ../books."""
    root = tmp_path_factory.mktemp("library")
    write_books(root, BOOKS)
    fixture = BAD_EPUBS / "ec-ocf-zip-unreadable-no-end-header-fatal.epub"
    if fixture.is_file():
        shutil.copy(fixture, root / "books" / BROKEN)
    else:  # a checkout without ../shared: the same fault, a sample EPUB cut before its central directory
        whole = (ROOT / "samples" / "two-chapters.epub").read_bytes()
        (root / "books" / BROKEN).write_bytes(whole[: len(whole) // 2])
    folder = root / "jobs"
    folder.mkdir()
    (folder / "library.toml").write_text(job_text(tiny_models, inputs=f'["../books/*.md", "../books/{BROKEN}"]'))
    return folder


@pytest.fixture(scope="module")
def rendered(library):
    """The `library` job run once, for real: its JobResult."""
    with JobState(library) as state:
        return run_job(load_job(library / "library.toml"), state)


def test_two_books_render_in_one_engine_run_sharing_batches(rendered, library):
    run = rendered.render
    assert len(run.engines) == 1  # one engine for the whole job
    books = {Path(r.book.path).name: r for r in run.books}
    assert sorted(books) == sorted(BOOKS)
    for name, render in books.items():
        out = library.parent / "out" / Path(name).stem
        files = sorted(out.glob("*.wav"))
        assert [f.name for f in files] == [f"01 - {'Dawn' if name == 'harbour.md' else 'Autumn'}.wav"]
        assert soundfile.info(files[0]).frames > 0
        assert render.report.rendered == render.report.chunks == 3 and not render.report.failures
    # Some engine step had chunks of both books in flight: they were in the same batches.
    harbour, orchard = books["harbour.md"].report.steps, books["orchard.md"].report.steps
    assert any(a0 < b1 and b0 < a1 for a0, a1 in harbour for b0, b1 in orchard)


def test_broken_book_fails_alone_and_status_says_why(rendered, library):
    states = {book.path.name: (state, error) for book, state, error in rendered.books}
    assert states["harbour.md"] == ("done", None) and states["orchard.md"] == ("done", None)
    assert states[BROKEN][0] == "failed" and BROKEN in states[BROKEN][1]
    code, output = jobs("--jobs-dir", library, "status", "library")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("library: on demand, 3 book(s); last run") and "(manual): failed, 1 engine(s)" in lines[0]
    failed = [line for line in lines if line.split()[0] == "failed"]
    assert len(failed) == 1 and BROKEN in failed[0] and "zip" in failed[0].lower()
    done = [line for line in lines if line.split()[0] == "done"]
    assert len(done) == 2 and all("3 chunks: 3 rendered, 0 reused; 1 file(s) written" in line for line in done)


def test_state_survives_a_restart(rendered, library):
    """A new process reads the last run and each book's outcome from the jobs folder's database."""
    status = subprocess.run([sys.executable, "-m", "renderer", "jobs", "--jobs-dir", str(library), "status"],
                            capture_output=True, text=True, check=True).stdout
    assert "(manual): failed, 1 engine(s)" in status
    assert status.count("  done ") == 2 and status.count("  failed ") == 1
    listing = subprocess.run([sys.executable, "-m", "renderer", "jobs", "list"], capture_output=True, text=True,
                             check=True, env={**os.environ, "RENDER_JOBS_DIR": str(library)}).stdout
    assert listing.startswith("library: on demand, 3 book(s); last run ")


def test_run_again_renders_only_what_is_not_done(rendered, library):
    code, output = jobs("--jobs-dir", library, "run", "library", "--quiet")
    assert code == 1  # the broken book fails again, and says so
    assert "0 engine(s) started" in output  # both books were done: no engine
    assert output.count("done ") == 2 and f"failed  {library.parent / 'books' / BROKEN}:" in output
    assert "Error: job library: 1 of 3 book(s) failed" in output and "Traceback" not in output


def test_serve_runs_a_due_job_and_stops_by_itself(rendered, library, tiny_models):
    every_two_seconds = "* * * * * */2"  # croniter's sixth field: seconds
    job = library / "nightly.toml"
    job.write_text(job_text(tiny_models, inputs='["../books/*.md"]', schedule=every_two_seconds))
    try:
        began = time.monotonic()
        code, output = jobs("--jobs-dir", library, "serve", "--poll", "0.5", "--until", "60", "--max-runs", "1")
        assert code == 0, output
        assert time.monotonic() - began < 30
        assert "job nightly: starting (schedule)" in output and "job nightly: 2 book(s) done, 0 failed" in output
        assert "served 1 run(s)" in output
        code, output = jobs("--jobs-dir", library, "status", "nightly")
        assert "(schedule): done" in output.splitlines()[0] and output.count("  done ") == 2
    finally:
        job.unlink()


def test_serve_with_nothing_due_stops_at_until(library, tiny_models):
    (library / "monthly.toml").write_text(job_text(tiny_models, inputs='["../books/*.md"]', schedule="0 3 1 * *"))
    began = time.monotonic()
    code, output = jobs("--jobs-dir", library, "serve", "--until", "1", "--max-runs", "5")
    (library / "monthly.toml").unlink()
    assert code == 0 and "served 0 run(s)" in output
    assert time.monotonic() - began < 10


def test_missed_runs_after_a_restart_run_once(rendered, library, tiny_models):
    daily = "0 2 * * *"
    now = time.time()
    assert due(daily, None, now - 3 * DAY, now) == MISSED  # down for three nights: one run, not three
    assert due(daily, now, now - 3 * DAY, now) is None  # ... and none after it
    slot = next_run(daily, now - DAY)
    assert due(daily, slot - 60, 0.0, slot + 1) == SCHEDULED
    assert due(None, None, 0.0, now) is None  # on demand

    (library / "daily.toml").write_text(job_text(tiny_models, inputs='["../books/harbour.md"]', schedule=daily))
    with JobState(library) as state:
        state.seen("daily", at=now - 3 * DAY)  # as if a scheduler had known it three days ago
    code, output = jobs("--jobs-dir", library, "serve", "--poll", "0.5", "--until", "2")
    (library / "daily.toml").unlink()
    assert code == 0, output
    assert output.count("job daily: starting (missed)") == 1 and "served 1 run(s)" in output


def test_two_schedulers_never_run_one_job_at_once(rendered, library, tiny_models):
    (library / "busy.toml").write_text(job_text(tiny_models, inputs='["../books/harbour.md"]',
                                                schedule="* * * * * */2"))
    try:
        with JobLock(library, "busy"):  # as another scheduler running it would hold it
            code, output = jobs("--jobs-dir", library, "run", "busy")
            assert code == 1
            assert output.strip() == f"Error: job busy: already running (pid {os.getpid()}); one run of a job at a time"
            code, output = jobs("--jobs-dir", library, "serve", "--poll", "0.5", "--until", "3")
            assert code == 0 and "job busy: already running" in output and "served 0 run(s)" in output
            with JobState(library) as state:
                assert state.last_run("busy") is None
        code, output = jobs("--jobs-dir", library, "run", "busy", "--quiet")  # released
        assert code == 0, output
    finally:
        (library / "busy.toml").unlink()


def test_two_serves_on_one_folder_run_each_slot_once_and_never_together(rendered, library, tiny_models):
    schedule = "* * * * * */2"
    job = library / "twice.toml"
    job.write_text(job_text(tiny_models, inputs='["../books/harbour.md"]', schedule=schedule))
    command = [sys.executable, "-m", "renderer", "jobs", "--jobs-dir", str(library), "serve", "--poll", "0.2",
               "--until", "8"]
    try:
        serves = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [serve.communicate(timeout=120)[1] for serve in serves]
    finally:
        job.unlink()
    assert [serve.returncode for serve in serves] == [0, 0], outputs
    with JobState(library) as state:
        runs = state.db.execute("SELECT started, finished FROM runs WHERE job = 'twice' ORDER BY id").fetchall()
    assert len(runs) >= 2, outputs
    for (started, finished), (next_started, _) in pairwise(runs):
        assert finished <= next_started  # never two at once
        assert next_run(schedule, started) <= next_started  # never twice for one slot


def test_serve_stops_cleanly_on_sigterm(library):
    process = subprocess.Popen([sys.executable, "-m", "renderer", "jobs", "--jobs-dir", str(library), "serve",
                                "--poll", "0.5"], stderr=subprocess.PIPE, text=True)
    assert process.stderr.readline().startswith("serving ")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0 and "Stopped serving" in stderr and "Traceback" not in stderr


def mistakes(tiny_models) -> list[tuple[str, str, str]]:
    """(job file text, the key the error names, a piece of the problem)."""
    good = job_text(tiny_models, inputs='["../books/*.md"]')
    return [
        (good + "colour = 'red'\n", "engine.colour", "unknown key"),
        ("volume = 3\n" + good, "volume", "unknown key"),
        ('schedule = "61 * * * *"\n' + good, "schedule", "is not a cron expression"),
        (good.replace("*.md", "*.txt"), "inputs[1]", "matches no file"),
        (good.replace('voice = "en"', 'voice = "xx"'), "voice", "unknown voice 'xx'"),
        (good.replace('voice = "en"', 'format = "ogg"'), "format", "'ogg' is not one of wav, flac, mp3, m4b"),
        (good.replace('voice = "en"', 'lexicon = "names.txt"'), "lexicon", "no such lexicon file"),
        (good.replace('inputs = ["../books/*.md"]', 'inputs = [{ path = "../books/harbour.md", cast = "c.toml" }]'),
         "inputs[1].cast", "no such cast file"),
        (good.replace('out = "../out"', ""), "out", "missing"),
        (good.replace("retries = 0", "retries = -1"), "engine.retries", "must be 0 or more"),
        (good.replace("keep-runaways = true", "keep-runaways = 'yes'"), "engine.keep-runaways", "true or false"),
        (good + "compile-codec = 1\n", "engine.compile-codec", "true or false"),
        (good + "data-parallel = -2\n", "engine.data-parallel", "must be 0 or more"),
    ]


def test_job_file_mistakes_are_one_line_naming_file_and_key(library, tiny_models, tmp_path):
    for number, (text, key, problem) in enumerate(mistakes(tiny_models)):
        folder = library.parent / f"mistake-{number}"  # beside ../books, as the good job is
        folder.mkdir(exist_ok=True)
        path = folder / "bad.toml"
        path.write_text(text)
        code, output = jobs("run", path)
        assert code == 1, output
        assert output.strip().startswith(f"Error: {path}: {key}: ") and problem in output, output
        assert len(output.strip().splitlines()) == 1
        assert not (folder / ".jobs.sqlite").exists()  # refused before anything ran
    path = tmp_path / "unparsable.toml"
    path.write_text('inputs = ["a.md"\nout = 1\n')
    code, output = jobs("run", path)
    assert code == 1 and output.startswith(f"Error: {path}, line ") and "not valid TOML" in output


def test_engine_keys_become_the_engine_options(library, tiny_models):
    path = library.parent / "mistake-0" / "compiled.toml"  # beside ../books, as the good job is
    path.parent.mkdir(exist_ok=True)
    path.write_text(job_text(tiny_models, inputs='["../books/*.md"]') + "compile-codec = true\neager = true\ndata-parallel = 2\n")
    engine = load_job(path).engine
    assert engine.compile_codec and engine.enforce_eager and engine.retries == 0 and engine.keep_runaways
    assert engine.data_parallel == 2


def test_shipped_example_jobs_are_valid():
    examples = sorted((ROOT / "jobs").glob("*.toml"))
    assert len(examples) == 2
    scheduled = {path.stem: load_job(path).schedule for path in examples}
    assert scheduled == {"nightly-samples": "0 2 * * *", "plays-on-demand": None}
