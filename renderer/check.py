"""`render check FILE...`: does an audio file meet ACX's audiobook standard? Measured the way ACX
states it, on the decoded audio (ffmpeg reads every format; stereo is mixed down to mono):

- RMS: of the whole file, silence included, in dB re full scale.
- peak: the highest sample, in dBFS.
- noise floor: the RMS of the quietest NOISE_WINDOW_SECONDS of the file (room tone, in a file
  that has some; digital silence measures -inf, which passes).
- head and tail: how long the file stays at or below ACX's noise floor (-60 dB RMS, in
  BLOCK_SECONDS blocks) before the first sound and after the last.
- chapters: the chapter markers the file carries (an .m4b's; 0 for files without any).
- an MP3's encoding (read by mutagen), which ACX also rules on: at least 192 kb/s, constant bit
  rate, 44.1 kHz. Other formats are checked for levels only: ACX takes uploads as MP3.

The file is decoded a stretch at a time and kept only as per-block sums, so a ten-hour .m4b is
checked in bounded memory.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from renderer.audio.export import MP3_KBPS, MP3_SAMPLE_RATE
from renderer.audio.loudness import (
    ACX_HEAD_SECONDS,
    ACX_NOISE_FLOOR_DB,
    ACX_PEAK_DBFS,
    ACX_RMS_DB,
    ACX_TAIL_SECONDS,
    db,
)
from renderer.book import RendererError

BLOCK_SECONDS = 0.01  # head and tail are measured to this
NOISE_WINDOW_SECONDS = 0.5  # the noise floor is the RMS of the quietest stretch this long
READ_SECONDS = 60  # decoded at a time
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4b", ".m4a", ".ogg", ".opus")  # what a folder's files are checked
SAMPLE_BYTES = 4  # float32


@dataclass(frozen=True)
class FileCheck:
    """One file's measurements (dB values may be -inf for digital silence)."""

    path: Path
    seconds: float
    rms_db: float
    peak_db: float
    noise_floor_db: float
    head_seconds: float
    tail_seconds: float
    chapters: int
    mp3: tuple[int, str, int] | None = None  # an MP3's kb/s, bit-rate mode (CBR, VBR, ...) and Hz

    @property
    def failures(self) -> list[str]:
        """What fails ACX, one phrase each, as the line shows it; [] when the file passes."""
        rms, peak, noise = round(self.rms_db, 1), round(self.peak_db, 1), round(self.noise_floor_db, 1)
        head, tail = round(self.head_seconds, 2), round(self.tail_seconds, 2)
        found = []
        if not ACX_RMS_DB[0] <= rms <= ACX_RMS_DB[1]:
            found.append(f"RMS {rms:.1f} dB outside {ACX_RMS_DB[0]:g} to {ACX_RMS_DB[1]:g}")
        if peak > ACX_PEAK_DBFS:
            found.append(f"peak {peak:.1f} dBFS above {ACX_PEAK_DBFS:g}")
        if noise > ACX_NOISE_FLOOR_DB:
            found.append(f"noise floor {noise:.1f} dB above {ACX_NOISE_FLOOR_DB:g}")
        if not ACX_HEAD_SECONDS[0] <= head <= ACX_HEAD_SECONDS[1]:
            found.append(f"head {head:.2f} s outside {ACX_HEAD_SECONDS[0]:g}-{ACX_HEAD_SECONDS[1]:g} s")
        if not ACX_TAIL_SECONDS[0] <= tail <= ACX_TAIL_SECONDS[1]:
            found.append(f"tail {tail:.2f} s outside {ACX_TAIL_SECONDS[0]:g}-{ACX_TAIL_SECONDS[1]:g} s")
        if self.mp3 is not None:
            kbps, mode, rate = self.mp3
            if kbps < MP3_KBPS or mode in ("VBR", "ABR") or rate != MP3_SAMPLE_RATE:
                found.append(f"MP3 {kbps} kb/s {mode} at {rate / 1000:g} kHz, not {MP3_KBPS} kb/s CBR at "
                             f"{MP3_SAMPLE_RATE / 1000:g} kHz")
        return found

    @property
    def passed(self) -> bool:
        return not self.failures

    def line(self) -> str:
        """`PASS path: RMS ..., peak ..., ...` or `FAIL path: ...; failing: ...`, one line."""
        measured = (f"RMS {self.rms_db:.1f} dB, peak {self.peak_db:.1f} dBFS, noise floor {self.noise_floor_db:.1f} dB, "
                    f"head {self.head_seconds:.2f} s, tail {self.tail_seconds:.2f} s, {self.chapters} chapters")
        if self.mp3 is not None:
            measured += f", MP3 {self.mp3[0]} kb/s {self.mp3[1]} {self.mp3[2] / 1000:g} kHz"
        if self.passed:
            return f"PASS {self.path}: {measured}"
        return f"FAIL {self.path}: {measured}; failing: {', '.join(self.failures)}"


def check_paths(paths: list[Path]) -> Iterator[FileCheck | RendererError]:
    """Each file's check, or the one-line error that stopped it, in order; a folder stands for its
    audio files (AUDIO_SUFFIXES, not in subfolders)."""
    for path in paths:
        if not path.is_dir():
            yield _checked(path)
            continue
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                       and not p.name.startswith("."))
        if not found:
            yield RendererError(f"{path}: a folder with no audio files ({', '.join(AUDIO_SUFFIXES)})")
        for file in found:
            yield _checked(file)


def _checked(path: Path) -> FileCheck | RendererError:
    try:
        return check_file(path)
    except RendererError as err:
        return err


def check_file(path: Path) -> FileCheck:
    """Measure one audio file (any format ffmpeg decodes) against ACX.

    Raises RendererError, one line naming the file, for a file that is not there or not audio.
    """
    if not path.is_file():
        raise RendererError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    rate, chapters, codec = _probe(path)
    energy, peak, lengths = _blocks(path, rate)
    if not len(lengths):
        raise RendererError(f"{path}: no audio in the file (0 samples)")
    samples = int(lengths.sum())
    quiet = energy / lengths <= 10.0 ** (ACX_NOISE_FLOOR_DB / 10)  # mean square at or below the floor
    return FileCheck(
        path=path,
        seconds=samples / rate,
        rms_db=db(float(np.sqrt(energy.sum() / samples))),
        peak_db=db(float(peak.max())),
        noise_floor_db=_noise_floor(energy, lengths, round(NOISE_WINDOW_SECONDS / BLOCK_SECONDS)),
        head_seconds=float(lengths[:_run_length(quiet)].sum()) / rate,
        tail_seconds=float(lengths[len(lengths) - _run_length(quiet[::-1]):].sum()) / rate,
        chapters=chapters,
        mp3=_mp3_encoding(path) if codec == "mp3" else None,
    )


def _mp3_encoding(path: Path) -> tuple[int, str, int]:
    """(kb/s, bit-rate mode, Hz) from the MP3's frame and Xing/Info headers. A file without such a
    header is taken as CBR: encoders write one for VBR ("Xing"), lame for CBR too ("Info")."""
    from mutagen import MutagenError
    from mutagen.mp3 import MP3, BitrateMode

    try:
        info = MP3(path).info
    except MutagenError as err:
        raise RendererError(f"{path}: its MP3 frames cannot be read ({err})") from None
    mode = {BitrateMode.VBR: "VBR", BitrateMode.ABR: "ABR"}.get(info.bitrate_mode, "CBR")
    return round(info.bitrate / 1000), mode, info.sample_rate


def _run_length(flags: np.ndarray) -> int:
    """How many of `flags` are True before the first False."""
    return int(np.argmin(flags)) if not flags.all() else len(flags)


def _noise_floor(energy: np.ndarray, lengths: np.ndarray, window: int) -> float:
    """dB RMS of the quietest `window` consecutive blocks (the whole file if it is shorter)."""
    window = min(window, len(energy))
    sums = np.concatenate([[0.0], np.cumsum(energy)])
    counts = np.concatenate([[0], np.cumsum(lengths)])
    means = (sums[window:] - sums[:-window]) / (counts[window:] - counts[:-window])
    return db(float(np.sqrt(max(means.min(), 0.0))))


def _probe(path: Path) -> tuple[int, int, str]:
    """(sample rate of the first audio stream, chapter markers, its codec's name) from ffprobe."""
    result = _run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_streams", "-show_chapters",
                   "-of", "json", str(path)], path)
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise RendererError(f"{path}: ffprobe gave no answer about the file") from None
    if not info.get("streams"):
        raise RendererError(f"{path}: no audio stream in the file")
    stream = info["streams"][0]
    return int(stream["sample_rate"]), len(info.get("chapters", [])), stream.get("codec_name", "")


def _blocks(path: Path, rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per BLOCK_SECONDS block of the decoded mono audio: (sum of squares, peak |sample|, samples)."""
    block = max(1, round(BLOCK_SECONDS * rate))
    command = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
               "-f", "f32le", "-"]
    energy, peak, lengths = [], [], []
    # errors to a file, not a pipe: a damaged file's many lines must not stall ffmpeg
    with tempfile.TemporaryFile() as errors, _start(command, errors) as process:
        leftover = np.zeros(0, np.float32)
        while data := process.stdout.read(READ_SECONDS * rate * SAMPLE_BYTES):
            samples = np.concatenate([leftover, np.frombuffer(data[:len(data) // SAMPLE_BYTES * SAMPLE_BYTES],
                                                              np.float32)])
            whole = len(samples) // block * block
            rows = samples[:whole].astype(np.float64).reshape(-1, block)
            energy.append(np.square(rows).sum(axis=1))
            peak.append(np.abs(rows).max(axis=1, initial=0.0))
            lengths.append(np.full(len(rows), block))
            leftover = samples[whole:]
        if len(leftover):
            energy.append([float(np.square(leftover.astype(np.float64)).sum())])
            peak.append([float(np.abs(leftover).max())])
            lengths.append([len(leftover)])
        process.wait()
        errors.seek(0)
        reason = _last_line(errors.read().decode(errors="replace"))
    if process.returncode:
        raise RendererError(f"{path}: ffmpeg cannot decode it ({reason})")
    joined = [np.concatenate(part) if part else np.zeros(0) for part in (energy, peak, lengths)]
    return joined[0], joined[1], joined[2].astype(np.int64)


def _start(command: list[str], errors) -> subprocess.Popen:
    try:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
    except FileNotFoundError:
        raise RendererError(f"{command[0]} is not installed: render check decodes files with it") from None


def _run(command: list[str], path: Path) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True)
    except FileNotFoundError:
        raise RendererError(f"{command[0]} is not installed: render check decodes files with it") from None
    if result.returncode:
        raise RendererError(f"{path}: not an audio file ffmpeg can read ({_last_line(result.stderr)})")
    return result


def _last_line(text: str) -> str:
    """ffmpeg's last word on a failure: its last non-empty line of errors."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
