"""Finished takes on disk, keyed by everything that determines their codes, so a re-run renders
only what is missing. One `.npz` a take under OUT/.renderer/takes/, written atomically."""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from renderer.book import Chunk, Take
from renderer.codec import CODEBOOK_SIZE, NUM_CODEBOOKS

STORE_DIR = ".renderer"
FORMAT_VERSION = 1  # bump when the stored layout or the meaning of a key changes


def take_key(chunk: Chunk, settings: dict) -> str:
    """A hex digest of what makes a take's codes: its text, voice, model and generation settings."""
    blob = json.dumps(
        {"v": FORMAT_VERSION, "text": chunk.text, "voice": chunk.voice.name, "model": chunk.voice.model,
         "seconds": round(chunk.seconds, 3), **settings},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class TakeStore:
    def __init__(self, out: Path):
        self.folder = out / STORE_DIR / "takes"

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npz"

    def load(self, chunk: Chunk, key: str) -> Take | None:
        """The stored take, or None if it is missing or damaged (a damaged entry is removed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                codes = data["codes"].astype(np.int64)
                finished, attempts = bool(data["finished"]), int(data["attempts"])
            if codes.ndim != 2 or codes.shape[0] != NUM_CODEBOOKS or (codes.size and (codes.min() < 0 or codes.max() >= CODEBOOK_SIZE)):
                raise ValueError("codes out of range")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            path.unlink(missing_ok=True)
            return None
        return Take(chunk=chunk, codes=codes, finished=finished, attempts=attempts)

    def save(self, take: Take, key: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        with open(tmp, "wb") as f:
            np.savez(f, codes=take.codes.astype(np.int16), finished=take.finished, attempts=take.attempts)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
