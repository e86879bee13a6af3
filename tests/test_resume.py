"""Never lose work: kill a real render (SIGKILL, SIGTERM) at several points, resume, and compare
with an uninterrupted render; a damaged store entry, a held lock, unwritable places."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import assert_same_files, stored

from renderer.cli import main
from renderer.store import STORE_DIR, RenderLock

BOOK_TEXT = """# Resume

## First

The tide came in at noon.

Gulls sat on the wall.

## Second

Nobody came to the shop.

The bell rang once at six.
"""
CHUNKS = 6  # two titles, four paragraphs


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("book") / "resume.md"
    path.write_text(BOOK_TEXT)
    return path


def command(book: Path, out: Path, tiny_models) -> list[str]:
    model, codec = tiny_models
    # One chunk at a time, so that a kill lands between chunks at a predictable place.
    return [sys.executable, "-m", "renderer", str(book), "--model", str(model), "--codec", str(codec), "--out",
            str(out), "--keep-runaways", "--retries", "0", "--max-seqs", "1", "--quiet"]


def run_until(book, out, tiny_models, takes: int, sig: int) -> subprocess.CompletedProcess:
    """Start a render, send `sig` once `takes` chunks are stored, and wait for it to end."""
    process = subprocess.Popen(command(book, out, tiny_models), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 300
    while len(stored(out)) < takes and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the render ended before it could be interrupted"
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def finish(book, out, tiny_models) -> str:
    """Render to the end in this process (no second start-up of Python, vLLM and NeMo); its output."""
    result = CliRunner().invoke(main, command(book, out, tiny_models)[3:], catch_exceptions=False)
    assert result.exit_code == 0, result.output[-2000:]
    return result.output


@pytest.fixture(scope="module")
def reference(book, tiny_models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    finish(book, out, tiny_models)
    return out


@pytest.mark.parametrize("kill_after", [1, pytest.param(4, marks=pytest.mark.slow)])
def test_sigkill_then_resume_matches_an_uninterrupted_render(book, tiny_models, reference, tmp_path, kill_after):
    out = tmp_path / "out"
    killed = run_until(book, out, tiny_models, kill_after, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    before = stored(out)
    assert kill_after <= len(before) < CHUNKS
    result = finish(book, out, tiny_models)
    assert f"{CHUNKS - len(before)} rendered, {len(before)} reused" in result
    after = stored(out)
    assert all(after[name] == mtime for name, mtime in before.items())  # none generated again
    assert_same_files(out, reference)


def test_sigterm_stops_cleanly_and_says_how_to_resume(book, tiny_models, reference, tmp_path):
    out = tmp_path / "out"
    stopped = run_until(book, out, tiny_models, 2, signal.SIGTERM)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "run the same command again to resume" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert len(stored(out)) >= 2
    finish(book, out, tiny_models)  # the lock went with the process
    assert_same_files(out, reference)


def test_damaged_take_is_rendered_again_and_files_are_remade(book, tiny_models, reference, tmp_path):
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", f"{reference}/.", str(out)], check=True)
    victim = min((out / STORE_DIR / "takes").glob("*/*.npz"))
    victim.write_bytes(victim.read_bytes()[:50])  # as if cut off mid-write by a crash
    assert "0 file(s) written, 2 already up to date" in finish(book, out, tiny_models)  # files still whole
    for wav in out.glob("*.wav"):
        wav.unlink()
    assert f"1 rendered, {CHUNKS - 1} reused" in finish(book, out, tiny_models)
    assert_same_files(out, reference)


def render(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_second_render_into_the_same_folder_refuses(book, tiny_models, tmp_path):
    out = tmp_path / "out"
    with RenderLock(out):
        result = render(book, "--out", out, "--model", tiny_models[0], "--codec", tiny_models[1])
    assert result.exit_code == 1
    assert f"another render is writing here (pid {os.getpid()})" in result.output
    with RenderLock(out):  # released: a crashed render cannot leave it stuck
        pass


def test_unwritable_output_folder_is_one_line(book, tiny_models, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = render(book, "--out", blocker / "out", "--model", tiny_models[0], "--codec", tiny_models[1], "--quiet")
    assert result.exit_code == 1 and "cannot create the output folder" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_store_that_cannot_be_written_keeps_what_was_done(book, tiny_models, tmp_path):
    out = tmp_path / "out"
    (out / STORE_DIR).mkdir(parents=True)
    (out / STORE_DIR / "takes").write_text("a file where the store's folder should be")  # like a full disk
    result = render(book, "--out", out, "--model", tiny_models[0], "--codec", tiny_models[1], "--keep-runaways",
                    "--retries", "0", "--quiet")
    assert result.exit_code == 1
    assert "cannot store a finished chunk" in result.output and "run again to resume" in result.output
    assert "Traceback" not in result.output


def test_status_shows_chunks_and_files(reference):
    result = render("status", reference)
    assert result.exit_code == 0
    assert "6/6 chunks done" in result.output
    assert result.output.count(": complete") == 2
