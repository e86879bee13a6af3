"""Shared fixtures: the tiny random-weight models, built once a session with the project's own
`render models tiny` (the real LFM2 and nano-codec architectures, shrunk)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from renderer.store import STORE_DIR

# No hub here; vLLM on the CPU in this process, with a small KV cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
BAD_EPUBS = ROOT.parent / "shared" / "fixtures" / "bad-epub"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    """(model folder, codec file) of the tiny random models."""
    folder = tmp_path_factory.mktemp("tiny")
    subprocess.run([sys.executable, "-m", "renderer", "models", "tiny", str(folder)], check=True, capture_output=True)
    return folder / "kani", folder / "codec.nemo"


@pytest.fixture
def short_book(tmp_path) -> Path:
    """A one-chapter Markdown book of two short paragraphs: the quickest real render."""
    path = tmp_path / "short.md"
    path.write_text("# Short\n\n## Only\n\nThe lamp was lit at dusk.\n\nIt burned until the morning came.\n")
    return path


def stored(out: Path) -> dict[str, int]:
    """Stored takes: file name -> modification time in ns (a regenerated take gets a new one)."""
    return {p.name: p.stat().st_mtime_ns for p in (out / STORE_DIR / "takes").glob("*/*.npz")}


def assert_same_files(out: Path, reference: Path) -> None:
    """The same chapter files made from the same takes (by their keys) as `reference`."""
    names = sorted(p.name for p in reference.glob("*.wav"))
    assert names and sorted(p.name for p in out.glob("*.wav")) == names
    assert sorted(stored(out)) == sorted(stored(reference))
    for name in names:
        ours, rate = soundfile.read(out / name, dtype="int16")
        theirs, _ = soundfile.read(reference / name, dtype="int16")
        assert rate == 22050 and ours.shape == theirs.shape
        # Same codes; decode batches may differ, which moves a sample by a rounding step at most.
        np.testing.assert_allclose(ours, theirs, atol=2, rtol=0)
    assert not list(out.glob(".*.partial"))


def write_books(folder: Path, books: dict[str, str]) -> Path:
    """folder/books/NAME for each of `books` (name -> text); the books folder."""
    (folder / "books").mkdir()
    for name, text in books.items():
        (folder / "books" / name).write_text(text)
    return folder / "books"
