"""Shared fixtures: the tiny random-weight models, built once a session with the project's own
`render models tiny` (the real LFM2 and nano-codec architectures, shrunk)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
