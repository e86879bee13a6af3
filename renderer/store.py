"""What a render keeps on disk under OUT/.renderer/, so that it can be killed at any moment and
resumed: finished takes (one `.npz` each, keyed by everything that determines their codes), the
plan of the render (render.json), the fingerprints of the files written (files.json), and a lock.
Everything is written atomically."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from renderer.book import Chunk, RendererError, Take
from renderer.codec import CODEBOOK_SIZE, NUM_CODEBOOKS

STORE_DIR = ".renderer"
FORMAT_VERSION = 1  # bump when the stored layout or the meaning of a key changes


RENDER_PLAN = "render.json"  # what the last render in this folder set out to make
FILE_PRINTS = "files.json"  # file name -> fingerprint of what it was made from


def file_print(keys: list[str], fmt: str, version: int) -> str:
    """What a written file was made from: its takes, in order, its format and the assembly version."""
    return hashlib.sha256(json.dumps([version, fmt, keys]).encode()).hexdigest()[:32]


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

    def load_settled(self, chunk: Chunk, key: str, retries: int) -> Take | None:
        """The stored take if it needs no more tries: finished, or a runaway that had every retry."""
        take = self.load(chunk, key)
        return take if take is not None and (take.finished or take.attempts > retries) else None

    def has(self, key: str) -> bool:
        return self.path(key).is_file()

    def save(self, take: Take, key: str) -> None:
        """Store a take (fsynced, then renamed into place). Raises RendererError if the disk refuses."""
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, codes=take.codes.astype(np.int16), finished=take.finished, attempts=take.attempts)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise RendererError(f"{self.folder}: cannot store a finished chunk ({err.strerror or err}); "
                                "the chunks stored so far are kept: fix this and run again to resume") from err


def write_json(path: Path, data) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def take_flock(path: Path):
    """An exclusive flock on `path`, taken without waiting: (the open file, with this pid written
    in it; close it to let go), or (None, the pid its holder wrote) when another holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    file = open(path, "a+")  # noqa: SIM115 - held open: the lock lasts as long as the file
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.seek(0)
        holder = file.read().strip() or "?"
        file.close()
        return None, holder
    file.seek(0)
    file.truncate()
    file.write(str(os.getpid()))
    file.flush()
    return file, str(os.getpid())


class RenderLock:
    """One render at a time in an output folder. An flock on OUT/.renderer/lock: the kernel drops it
    when the process dies, so a crashed render never leaves it stuck."""

    def __init__(self, out: Path):
        self.path = out / STORE_DIR / "lock"
        self.file = None

    def __enter__(self):
        self.file, holder = take_flock(self.path)
        if self.file is None:
            raise RendererError(f"{self.path.parents[1]}: another render is writing here (pid {holder}); "
                                "wait for it to finish or choose another --out")
        for partial in self.path.parents[1].glob(".*.partial"):  # left by a render that was killed
            partial.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()
