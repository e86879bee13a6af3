"""The same render path on a GPU: vLLM (CUDA build) with bitsandbytes 4-bit, on random-weight models
of kani-tts-400m's and the nano codec's real size. Run on the device machine (bench/README.md)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from renderer.codec import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def full_models(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("RENDERER_FULL_MODELS", tmp_path_factory.mktemp("full")))
    if not (folder / "codec.nemo").exists():
        subprocess.run([sys.executable, "-m", "renderer", "models", "tiny", str(folder), "--size", "full"], check=True)
    return folder


def test_full_size_render_with_bitsandbytes(full_models, tmp_path):
    import torch

    assert torch.cuda.is_available()
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "renderer", str(ROOT / "samples" / "two-chapters.md"), "--model",
         str(full_models / "kani"), "--codec", str(full_models / "codec.nemo"), "--out", str(out),
         "--format", "flac", "--keep-runaways", "--retries", "0", "--quiet"],
        capture_output=True, text=True, check=False, env={**os.environ, "VLLM_LOGGING_LEVEL": "INFO"},
    )
    if os.environ.get("RENDERER_GPU_LOG"):  # the whole log, for a failure that its tail does not explain
        Path(os.environ["RENDERER_GPU_LOG"]).write_text(result.stdout + result.stderr)
    errors = [line for line in result.stderr.splitlines() if re.search(r"Error|Traceback|Killed|exit|signal", line)]
    assert result.returncode == 0, "\n".join([f"exit {result.returncode}", *errors[-40:], "...", result.stderr[-2000:]])
    assert "'quantization': 'bitsandbytes'" in result.stdout + result.stderr  # vLLM logs its non-default arguments
    files = sorted(out.glob("*.flac"))
    assert [f.name[:5] for f in files] == ["01 - ", "02 - "]
    for f in files:
        info = soundfile.info(f)
        assert info.samplerate == SAMPLE_RATE and info.frames > SAMPLE_RATE


def test_data_parallel_starts_an_engine_on_each_gpu(full_models, monkeypatch):
    """--data-parallel 2: an engine core on each GPU (each takes its memory share of that GPU), and
    every chunk comes back."""
    import torch

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # conftest's CPU setting: engines in this process

    from renderer.book import Chunk, Voice
    from renderer.speech.engine import EngineOptions, SpeechEngine

    if torch.cuda.device_count() < 2:
        pytest.skip("one GPU here")
    free = [torch.cuda.mem_get_info(k)[0] for k in range(2)]
    options = EngineOptions(replicas=1, data_parallel=2, gpu_memory_utilization=0.3, length_margin=1.0, retries=0,
                            keep_runaways=True)
    engine = SpeechEngine(str(full_models / "kani"), options)
    try:
        taken = [(free[k] - torch.cuda.mem_get_info(k)[0]) / 2**30 for k in range(2)]
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        assert all(gib > 0.2 * total for gib in taken), taken  # each about 0.3 of its GPU
        voice = Voice("en", "andrew", str(full_models / "kani"), "unused")
        chunks = [Chunk(1, i, i, f"Sentence number {i}.", voice, seconds=1.0) for i in range(8)]
        takes = list(engine.takes(chunks))
    finally:
        engine.close()
    assert sorted(t.chunk.index for t in takes) == list(range(8))
    assert all(t.codes.shape[0] == 4 and 0 < t.codes.shape[1] <= 13 for t in takes)  # 1 s: 13 frames at most


def test_decoding_threads_on_streams_of_their_own_match_one_thread(full_models):
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from renderer.codec import load_codec

    codec = load_codec(str(full_models / "codec.nemo"))
    rng = np.random.default_rng(0)
    batches = [[rng.integers(0, 4032, size=(4, n)) for n in rng.integers(19, 151, size=12)] for _ in range(6)]
    alone = [codec.decode(batch) for batch in batches]
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(codec.decode, batches))
    assert codec.threads >= 2  # this thread on the default stream, the pool's on streams of their own
    for mine, want in zip(together, alone, strict=True):
        for a, w in zip(mine, want, strict=True):
            np.testing.assert_allclose(a, w, atol=1e-3)  # bf16; the same kernels, on another stream


def test_snake_conv_by_descriptors_matches_by_pointers(monkeypatch):
    """The convolution kernel moving its tiles by descriptors (tma, x channels-last) makes what it makes by pointers:
    lengths not a multiple of 8, a row's channels not a multiple of the block, the residual, a sum into a tensor, the
    next activation applied (and written channels-last), and activated apart."""
    import torch

    from renderer import codec_kernels

    made = []
    descriptors = codec_kernels._descriptors
    monkeypatch.setattr(codec_kernels, "_descriptors", lambda *args: made.append(1) or descriptors(*args))
    torch.manual_seed(0)
    for channels, length, taps, dilation in ((27, 1001, 7, 3), (54, 997, 11, 5), (27, 64, 3, 1), (108, 700, 7, 3)):
        like = torch.randn(3, channels, length, dtype=torch.bfloat16, device="cuda")
        x = codec_kernels.to_channels_last(like)  # as an activation kernel writes it
        residual, into = (codec_kernels.aligned_empty(3, channels, length, like) for _ in range(2))
        residual.copy_(torch.randn(residual.shape))
        alpha = torch.rand(channels // 2, device="cuda", dtype=torch.bfloat16) + 0.5
        weight = torch.randn(taps, channels, channels, device="cuda", dtype=torch.bfloat16) / (channels * taps) ** 0.5
        bias = torch.randn(channels, device="cuda", dtype=torch.bfloat16)
        act = (alpha, alpha.reciprocal(), channels // 2, 0.1)
        for more in ({"activated": True}, {"apart": True}, {"activated": True, "residual": residual, "scale": 1 / 3},
                     {"activated": True, "next_act": act}):
            got = []
            for tma in (False, True):
                before = len(made)
                if "residual" in more:  # a stage's sum so far, added to
                    into.copy_(residual)
                y = codec_kernels.snake_conv(x, *act, weight, bias, dilation, tma=tma,
                                             into=into if "residual" in more else None, **more)
                got.append(y.clone())
                assert len(made) == before + tma, more  # the descriptors' kernel ran where asked
            want, by_descriptors = got
            error = float((by_descriptors.float() - want.float()).norm() / want.float().norm())
            assert error < 1e-3, (channels, length, more, error)


def test_fused_decoder_matches_the_eager_one(full_models):
    """The residual units as Triton kernels (Codec fused; also activated apart, and with the other activations
    as kernels), against the eager decoder in float32: the same audio in float32 (cuDNN's convolutions may run
    in TF32), close in bf16 (the decoder's default)."""
    from dataclasses import replace

    import numpy as np

    from renderer.codec import EAGER, DecoderPlan, load_codec

    path = str(full_models / "codec.nemo")
    reference = load_codec(path, precision="fp32", plan=EAGER)
    rng = np.random.default_rng(2)
    codes = [rng.integers(0, 4032, size=(4, n)) for n in (150, 97, 19)]
    want = reference.decode(codes)

    def snr(got):
        return min(10 * np.log10(float(np.sum(w.astype(np.float64) ** 2)) /
                                 max(float(np.sum((g.astype(np.float64) - w) ** 2)), 1e-30))
                   for g, w in zip(got, want, strict=True))

    fused_only = replace(EAGER, fused=True)
    for precision, least_db, plan in (("fp32", 40, fused_only), ("bf16", 30, fused_only),
                                      ("bf16", 30, replace(fused_only, fused_apart=True)),
                                      ("bf16", 30, replace(EAGER, kernel_activations=True)),
                                      ("fp32", 40, DecoderPlan()), ("bf16", 30, DecoderPlan()),  # the default
                                      ("bf16", 30, replace(DecoderPlan(), kernel_upsampling=False, folded=False)),
                                      ("bf16", 30, DecoderPlan(chained=True)), ("bf16", 30, DecoderPlan(tma=True)),
                                      ("bf16", 30, DecoderPlan(tma=True, chained=True))):
        fused = load_codec(path, precision=precision, plan=plan)
        # float32 by pointers: descriptors are measured in 16 bits only
        assert fused.plan == (replace(plan, tma=False) if precision == "fp32" else plan)
        assert not fused.kernels_failed
        how = {k: v for k, v in vars(plan).items() if v != getattr(EAGER, k)}
        got = fused.decode(codes)
        assert [g.shape for g in got] == [w.shape for w in want]
        print(f"fused {precision} {how}: {snr(got):.1f} dB from the eager fp32 decoder")
        assert snr(got) > least_db
