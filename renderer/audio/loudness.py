"""Mastering a chapter for audiobook platforms: DC and rumble removed, loudness normalized to one
target (ITU-R BS.1770 integrated loudness, through pyloudnorm), then a look-ahead true-peak limiter.

The standard is ACX's (Audible's), which most platforms follow: per file an RMS level of -23 to
-18 dB, peaks at or below -3 dBFS, a noise floor at or below -60 dB RMS, 0.5-1 s of room tone at the
head and 1-5 s at the tail. ACX states RMS; loudness is normalized in LUFS because a gated,
K-weighted measure is what makes chapters sound equally loud. For speech the two sit close: the
gate drops the pauses that pull a whole-file RMS down, and the K-weighting adds a little for the
consonants, so a chapter at -19 LUFS measures about -20 to -22 dB RMS, the middle of ACX's window.
A target inside that window is also held to ACX's RMS (see `master`), so every chapter passes.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from renderer.book import RendererError

ACX_RMS_DB = (-23.0, -18.0)  # whole-file RMS window, dB re full scale
ACX_PEAK_DBFS = -3.0  # the highest sample
ACX_NOISE_FLOOR_DB = -60.0  # RMS of the room tone, at most
ACX_HEAD_SECONDS = (0.5, 1.0)  # room tone before the first word
ACX_TAIL_SECONDS = (1.0, 5.0)  # room tone after the last word

DEFAULT_LUFS = -19.0  # integrated loudness target: about -21 dB RMS for speech, mid-window for ACX
TARGET_RANGE_LUFS = (-40.0, -10.0)  # what --loudness takes: louder than -10 would be mostly limiter
OFF = "off"  # --loudness off: chapters written as assembled
RMS_MARGIN_DB = 1.0  # a chapter held to ACX's window lands this far inside its edges (MP3 loses ~0.5)
CEILING_DBTP = -3.5  # true-peak ceiling: 0.5 dB under ACX's -3 dBFS, for lossy encoders' overshoot
HIGHPASS_HZ = 60.0  # below a man's lowest voice; removes DC offset and rumble
HIGHPASS_ORDER = 2  # 12 dB/octave
# What MP3 and AAC keep at 22,050 Hz: lossless files are cut there too, so every format measures
# alike. Speech has little above it; the tiny models' noise has half its energy at Nyquist.
LOWPASS_HZ = 10_000.0
LOWPASS_ORDER = 6
LOWPASS_MAX = 0.45  # of the sample rate: below Nyquist at any rate
OVERSAMPLE = 4  # true peak from 4x oversampling, as BS.1770 does
INTERPOLATION_TAPS = 12  # a phase of the oversampling filter
KAISER_BETA = 6.0  # its window: flat to 10 kHz within 0.01 dB at 22,050 Hz
LOOKAHEAD_SECONDS = 0.005  # the limiter's gain reaches its floor this long before a peak
HOLD_SECONDS = 0.05  # and stays there this long after it, so speech is not pumped
PEAK_BLOCK = 1 << 20  # samples oversampled at a time: memory stays bounded for long chapters
PEAK_PAD = INTERPOLATION_TAPS  # input samples either side of a block: the filter's reach
HOLD_PASSES = 4  # gain, limit, measure: again while the measure is off by more than SETTLED_DB
SETTLED_DB = 0.05
LEAST_SLOPE = 0.1  # dB gained per dB of gain, at least, however much the limiter takes


def loudness_target(text: str) -> float | None:
    """A --loudness value: a LUFS target ("-19") or "off" (None). Raises RendererError, one line."""
    if text.strip().lower() == OFF:
        return None
    try:
        target = float(text)
    except ValueError:
        raise RendererError(f"loudness {text!r}: expected a LUFS target such as {DEFAULT_LUFS:g}, or {OFF}") from None
    if not TARGET_RANGE_LUFS[0] <= target <= TARGET_RANGE_LUFS[1]:
        raise RendererError(f"loudness {text!r}: a target from {TARGET_RANGE_LUFS[0]:g} to "
                            f"{TARGET_RANGE_LUFS[1]:g} LUFS, or {OFF} (ACX: {ACX_RMS_DB[0]:g} to {ACX_RMS_DB[1]:g})")
    return target


def db(x: float) -> float:
    """An amplitude ratio in dB; -inf for 0."""
    return 20.0 * float(np.log10(x)) if x > 0 else float("-inf")


def gain_of(decibels: float) -> float:
    return float(10.0 ** (decibels / 20.0))


def rms_db(samples: np.ndarray) -> float:
    """Whole-signal RMS in dB re full scale (a full-scale square wave is 0 dB), as ACX states it."""
    return db(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))) if len(samples) else float("-inf")


def loudness_lufs(samples: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (BS.1770-4, gated, K-weighted) of float mono audio; -inf for silence."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    if len(samples) < meter.block_size * sample_rate:
        return float("-inf")
    return float(meter.integrated_loudness(samples.astype(np.float64)))


def _interpolator() -> np.ndarray:
    """The 4x interpolation filter: a windowed-sinc Nyquist filter, INTERPOLATION_TAPS a phase
    (BS.1770 uses 12), whose phase 0 passes the samples through unchanged."""
    from scipy.signal import firwin

    return (firwin(OVERSAMPLE * INTERPOLATION_TAPS + 1, 1 / OVERSAMPLE, window=("kaiser", KAISER_BETA))
            * OVERSAMPLE).astype(np.float32)


def true_peaks(samples: np.ndarray) -> np.ndarray:
    """Each sample's true peak: the largest |value| of the 4x oversampled signal from it up to the
    next sample. (n,) float in, (n,) float32 out, >= |samples|. Oversampled a block at a time."""
    from scipy.signal import upfirdn

    taps = _interpolator()
    delay = OVERSAMPLE * INTERPOLATION_TAPS // 2  # where sample 0 comes out, at the 4x rate
    x = samples.astype(np.float32)
    out = np.abs(x)
    for start in range(0, len(x), PEAK_BLOCK):
        lo, end = max(0, start - PEAK_PAD), min(len(x), start + PEAK_BLOCK)
        fine = upfirdn(taps, x[lo:min(len(x), end + PEAK_PAD)], up=OVERSAMPLE)
        first = delay + OVERSAMPLE * (start - lo)
        for phase in range(1, OVERSAMPLE):  # phase 0 is the samples themselves
            between = fine[first + phase:first + OVERSAMPLE * (end - start):OVERSAMPLE]
            np.maximum(out[start:end], np.abs(between), out=out[start:end])
    return out


def true_peak_db(samples: np.ndarray) -> float:
    """The true peak (4x oversampled) in dBTP."""
    return db(float(true_peaks(samples).max(initial=0.0)))


def limit(samples: np.ndarray, sample_rate: int, ceiling_dbtp: float = CEILING_DBTP,
          peaks: np.ndarray | None = None) -> np.ndarray:
    """A look-ahead true-peak limiter: where the true peak would pass `ceiling_dbtp` the audio is
    turned down, the gain ramping down over LOOKAHEAD_SECONDS before the peak and back up after
    HOLD_SECONDS; elsewhere it is untouched. peaks: `true_peaks(samples)`, if the caller has them.
    float mono in, float32 out, same length. The gain curve is smooth, so the result's true peak
    stays within a hundredth of a dB of the ceiling; `master` trims that exactly."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = gain_of(ceiling_dbtp)
    peaks = true_peaks(samples) if peaks is None else peaks
    if peaks.max(initial=0.0) <= ceiling:
        return samples.astype(np.float32)
    needed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    ahead, hold = max(1, round(LOOKAHEAD_SECONDS * sample_rate)), round(HOLD_SECONDS * sample_rate)
    # gain[n] = the least needed in [n - hold, n + ahead], then averaged over the `ahead` samples
    # up to n: at a peak every averaged value is at most what the peak needs, so the mean is too.
    size = hold + ahead + 1
    floor = minimum_filter1d(needed, size, mode="nearest", origin=hold - size // 2)
    gain = uniform_filter1d(floor, ahead, mode="nearest", origin=(ahead - 1) // 2)
    return (samples * gain).astype(np.float32)


def band_limit(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """DC offset and rumble below HIGHPASS_HZ and what lossy encoders drop above LOWPASS_HZ removed
    (Butterworth filters); digital silence stays zero. float mono in, float32 out."""
    from scipy.signal import butter, sosfilt

    sos = np.concatenate([
        butter(HIGHPASS_ORDER, HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos"),
        butter(LOWPASS_ORDER, min(LOWPASS_HZ, LOWPASS_MAX * sample_rate), "lowpass", fs=sample_rate, output="sos"),
    ])
    return sosfilt(sos, samples.astype(np.float64)).astype(np.float32)


def held_to_acx(target_lufs: float) -> bool:
    """Whether a target asks for ACX: one inside its RMS window (a podcast's -16 LUFS does not)."""
    return ACX_RMS_DB[0] <= target_lufs <= ACX_RMS_DB[1]


def master_samples(samples: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """One chapter mastered: band-limited, turned to `target_lufs` integrated loudness, true peaks
    limited to CEILING_DBTP. The gain is corrected for what limiting took (up to HOLD_PASSES times,
    each step scaled up by the share of the last one that the limiter took);
    when the target is inside ACX's window, a chapter whose pauses would leave its RMS outside the
    window is turned up or down just enough to be RMS_MARGIN_DB inside it.

    float mono in, float32 out, same length; silence comes back as it went in.
    """
    filtered = band_limit(samples, sample_rate)
    loudness = loudness_lufs(filtered, sample_rate)
    if not np.isfinite(loudness):  # nothing above the gate: nothing to turn up
        return samples.astype(np.float32)
    peaks = true_peaks(filtered)
    gain_db, correction, slope = 0.0, target_lufs - loudness, 1.0
    low, high = ACX_RMS_DB[0] + RMS_MARGIN_DB, ACX_RMS_DB[1] - RMS_MARGIN_DB
    rms = rms_db(filtered)
    for _ in range(HOLD_PASSES):
        step = correction / slope  # the limiter takes part of each step up: ask for that much more
        gain_db += step
        gain = np.float32(gain_of(gain_db))
        out = limit(filtered * gain, sample_rate, peaks=peaks * gain)
        rms, last_rms = rms_db(out), rms
        slope = float(np.clip((rms - last_rms) / step, LEAST_SLOPE, 1.0)) if abs(step) > SETTLED_DB else slope
        correction = target_lufs - loudness_lufs(out, sample_rate)
        if held_to_acx(target_lufs):
            correction = float(np.clip(rms + correction, low, high) - rms)
        if abs(correction) < SETTLED_DB:
            break
    over = float(true_peaks(out).max(initial=0.0)) / gain_of(CEILING_DBTP)  # the gain curve's own ripple
    return out / np.float32(over) if over > 1.0 else out


def master(audio, target_lufs: float | None):
    """A ChapterAudio mastered to `target_lufs` (see master_samples); None: returned as it is."""
    if target_lufs is None:
        return audio
    return dataclasses.replace(audio, samples=master_samples(audio.samples, audio.sample_rate, target_lufs))


def mastering_version(assembly_version: int, target_lufs: float | None) -> str:
    """What the written audio depends on besides the takes: the assembly and the loudness target.
    A file recorded under another value is remade."""
    return f"{assembly_version}:{'off' if target_lufs is None else f'{target_lufs:g}'}"
