"""The NeMo nano codec (real NeMo code, tiny random weights): batched decode, padding, lengths, and
our plain decoder against NeMo's own."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from renderer.codec import (
    DECODE_BATCH_FRAMES,
    EAGER,
    SAMPLES_PER_FRAME,
    UPSAMPLE_RATES,
    CodecError,
    DecoderPlan,
    batches_by_frames,
    load_codec,
    padded_frames,
)


@pytest.fixture(scope="module")
def codec(tiny_models):
    return load_codec(str(tiny_models[1]), device="cpu", plan=EAGER)


def test_decode_lengths_follow_frames(codec):
    rng = np.random.default_rng(0)
    codes = [rng.integers(0, 4032, size=(4, n)) for n in (3, 20, 0, 11)]
    audio = codec.decode(codes)
    assert [len(a) for a in audio] == [n * SAMPLES_PER_FRAME for n in (3, 20, 0, 11)]
    assert all(a.dtype == np.float32 for a in audio)
    assert all(np.abs(a).max(initial=0) <= 1.0 for a in audio)


def test_padding_in_a_batch_does_not_change_a_take(codec):
    rng = np.random.default_rng(1)
    short, long = rng.integers(0, 4032, size=(4, 8)), rng.integers(0, 4032, size=(4, 30))
    alone = codec.decode([short])[0]
    batched = codec.decode([short, long])[0]
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_a_batch_the_gpu_cannot_hold_is_decoded_in_halves_and_the_size_kept(tiny_models, codec):
    small = load_codec(str(tiny_models[1]), device="cpu")
    decoder = small.decoder

    def card_of_two_rows(latents):  # the real decoder behind a card with room for two takes at once
        if latents.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return decoder(latents)

    small.decoder = card_of_two_rows
    rng = np.random.default_rng(3)
    codes = [rng.integers(0, 4032, size=(4, n)) for n in (9, 4, 0, 13, 6, 2)]
    for halves, whole in zip(small.decode(codes), codec.decode(codes), strict=True):
        np.testing.assert_allclose(halves, whole, atol=1e-5)
    assert small.most_rows == 2  # five takes failed, then two at a time, and so on for later batches

    small.decoder = lambda latents: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(CodecError, match="out of GPU memory while decoding a single take"):
        small.decode(codes[:1])


def nemo_decode(codec, codes: list[np.ndarray]) -> list[np.ndarray]:
    """NeMo's own AudioCodecModel.decode of one padded batch, trimmed to each take's length."""
    tokens = torch.zeros((len(codes), 4, max(c.shape[1] for c in codes)), dtype=torch.long)
    for row, c in enumerate(codes):
        tokens[row, :, : c.shape[1]] = torch.from_numpy(c)
    with torch.inference_mode():
        audio, lengths = codec.model.decode(tokens=tokens, tokens_len=torch.tensor([c.shape[1] for c in codes]))
    return [audio[row, : int(lengths[row])].float().numpy() for row in range(len(codes))]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_our_decoder_gives_nemos_audio(tiny_models, precision):
    codec = load_codec(str(tiny_models[1]), device="cpu", precision=precision)
    rng = np.random.default_rng(2)
    codes = [rng.integers(0, 4032, size=(4, n)) for n in (30, 7, 51)]
    for ours, nemo in zip(codec.decode(codes), nemo_decode(codec, codes), strict=True):
        assert len(ours) == len(nemo)
        np.testing.assert_allclose(ours, nemo, atol=1e-6)


def test_channels_last_decoder_gives_the_same_audio(tiny_models, codec):
    wide = load_codec(str(tiny_models[1]), device="cpu", channels_last=True)
    assert wide.decoder.pre.weight.dim() == 4 and wide.decoder.pre.weight.is_contiguous(memory_format=torch.channels_last)
    assert wide.decoder.wide_at == [True] * len(UPSAMPLE_RATES) and wide.decoder.post.weight.dim() == 4
    first_two = load_codec(str(tiny_models[1]), device="cpu", plan=DecoderPlan(wide_stages=2))  # then plain tensors
    assert first_two.decoder.pre.wide and not first_two.decoder.post.wide
    assert first_two.decoder.wide_at == [True, True] + [False] * (len(UPSAMPLE_RATES) - 2)
    assert first_two.decoder.stages[2][1].weight.dim() == 3
    rng = np.random.default_rng(4)
    codes = [rng.integers(0, 4032, size=(4, n)) for n in (30, 7, 51)]
    want = codec.decode(codes)
    for each in (wide, first_two):
        for ours, plain in zip(each.decode(codes), want, strict=True):
            assert len(ours) == len(plain)
            np.testing.assert_allclose(ours, plain, atol=1e-5)


@pytest.mark.slow  # two minutes of compiling on the CPU
def test_compiled_decoder_gives_the_same_audio_for_every_batch_shape(tiny_models, codec):
    torch._dynamo.utils.counters.clear()
    compiled = load_codec(str(tiny_models[1]), device="cpu", compile=True)  # compiles once, while loading
    rng = np.random.default_rng(3)
    for n, frames in ((3, 30), (1, 12), (5, 80)):  # a lone take is padded to two rows: no second compile
        codes = [rng.integers(0, 4032, size=(4, frames - i)) for i in range(n)]
        for ours, eager in zip(compiled.decode(codes), codec.decode(codes), strict=True):
            np.testing.assert_allclose(ours, eager, atol=1e-5)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_a_decoder_we_do_not_copy_is_one_clear_line(tmp_path):
    from nemo.collections.tts.models import AudioCodecModel
    from omegaconf import OmegaConf

    from renderer.tiny import CODEC_SIZES, codec_config

    config = codec_config(CODEC_SIZES["tiny"])
    config["audio_decoder"]["activation"] = "elu"
    path = tmp_path / "elu.nemo"
    AudioCodecModel(cfg=OmegaConf.create(config)).save_to(str(path))
    with pytest.raises(CodecError, match="codec decoder: activation ELU is not supported") as err:
        load_codec(str(path), device="cpu")
    assert "\n" not in str(err.value)


def test_missing_codec_file_is_one_clear_line(tmp_path):
    with pytest.raises(CodecError, match="no such codec file"):
        load_codec(str(tmp_path / "missing.nemo"))


def test_unreachable_hub_codec_is_one_clear_line():
    with pytest.raises(CodecError) as err:
        load_codec("nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps", device="cpu")
    assert "\n" not in str(err.value)


def test_batches_respect_the_frame_budget():
    assert batches_by_frames([10, 10, 10], budget=20) == [[0, 1], [2]]
    assert batches_by_frames([5, 30, 5], budget=20) == [[1], [0, 2]]  # longest first; one too long alone
    assert batches_by_frames([], budget=20) == []


def test_takes_are_batched_with_takes_of_like_length():
    rng = np.random.default_rng(5)
    lengths = rng.integers(19, 151, size=300).tolist()  # a render's mix: 1.5- to 12-s takes, as they come
    batches = batches_by_frames(lengths)
    assert sorted(i for batch in batches for i in batch) == list(range(300))
    widths = [padded_frames(max(lengths[i] for i in batch)) for batch in batches]
    assert all(len(batch) * width <= DECODE_BATCH_FRAMES for batch, width in zip(batches, widths, strict=True))
    assert widths == sorted(widths, reverse=True)
    fill = sum(lengths) / sum(len(batch) * width for batch, width in zip(batches, widths, strict=True))
    least = -(-sum(lengths) // DECODE_BATCH_FRAMES)  # batches, were there no padding at all: 7
    assert fill > 0.9 and len(batches) <= 1.5 * least  # as they came, padded to 2 s: fill 0.56 in 13 batches


def test_batches_cost_least_of_all_splits_by_length():
    import itertools

    def split_cost(batches, lengths, cost, rows_for):
        return sum(rows_for(len(b), padded_frames(max(lengths[i] for i in b))) * padded_frames(max(lengths[i] for i in b))
                   + cost for b in batches)

    rng = np.random.default_rng(8)
    for rows_for in (lambda takes, frames: takes, lambda takes, frames: -(-takes // 4) * 4):  # rows as given; padded
        for _ in range(40):
            lengths = rng.integers(1, 40, size=int(rng.integers(1, 8))).tolist()
            cost = int(rng.integers(0, 60))
            batches = batches_by_frames(lengths, budget=100, cost=cost, rows_for=rows_for)
            order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
            best = math.inf
            for cuts in itertools.product((False, True), repeat=len(order) - 1):  # every split of the sorted takes
                split, at = [], 0
                for k, cut in enumerate((*cuts, True)):
                    if cut:
                        split.append(order[at:k + 1])
                        at = k + 1
                widths = [padded_frames(max(lengths[i] for i in b)) for b in split]
                if all(len(b) == 1 or rows_for(len(b), w) * w <= 100 for b, w in zip(split, widths, strict=True)):
                    best = min(best, split_cost(split, lengths, cost, rows_for))
            assert split_cost(batches, lengths, cost, rows_for) == best


def test_decoding_counts_the_frames_padded(codec):
    rng = np.random.default_rng(6)
    before = codec.frames, codec.padded
    codec.decode([rng.integers(0, 4032, size=(4, n)) for n in (11, 3)])
    assert (codec.frames - before[0], codec.padded - before[1]) == (14, 2 * padded_frames(11))


def test_threads_decoding_at_once_get_each_its_own_audio_and_counts(codec):
    rng = np.random.default_rng(7)
    batches = [[rng.integers(0, 4032, size=(4, n)) for n in lengths] for lengths in ((9, 4), (13, 2, 6), (5,), (11, 3))]
    alone = [codec.decode(batch) for batch in batches]
    from concurrent.futures import ThreadPoolExecutor

    def decode(batch):
        before = codec.counted_here()
        audio = codec.decode(batch)
        return audio, [now - then for now, then in zip(codec.counted_here(), before, strict=True)]

    totals = codec.frames, codec.padded
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(decode, batches * 3))
    for (audio, counted), want in zip(together, alone * 3, strict=True):
        assert all(np.array_equal(a, w) for a, w in zip(audio, want, strict=True))
        assert counted[0] == sum(len(a) for a in audio) // SAMPLES_PER_FRAME  # this call's frames, not another's
    assert sum(counted[1] for _, counted in together) == codec.padded - totals[1]
    assert codec.frames - totals[0] == 3 * sum(c.shape[1] for batch in batches for c in batch)


@pytest.fixture
def interpreted_kernels(monkeypatch):
    """renderer.codec_kernels under Triton's interpreter (the CPU's only way to run it), imported afresh so
    that its kernel is decorated for it; in float32, which the interpreter computes as the GPU would."""
    import importlib

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    import renderer.codec_kernels as kernels

    return importlib.reload(kernels)


def test_the_fused_kernel_is_activation_convolution_bias_and_residual(interpreted_kernels):
    """snake_conv against the same steps in torch: Snake on the first channels, leaky ReLU on the rest, a
    causal dilated convolution (zero before the start), its bias, the residual; from a strided input."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    wide = torch.randn(2, 20, 310)
    x, residual = wide[:, :, 5:305], torch.randn(2, 24, 300)  # x's rows and channels strided, as UpSample's
    alpha, inverse = torch.rand(10) + 0.5, torch.rand(10) + 0.5
    weight, bias = torch.randn(24, 20, 3), torch.randn(24)
    def activated(x, snake):
        return torch.cat([x[:, :snake] + inverse[:snake, None] * torch.sin(alpha[:snake, None] * x[:, :snake]) ** 2,
                          F.leaky_relu(x[:, snake:], 0.1)], dim=1)

    for snake, apart in ((10, True), (10, False), (0, False)):  # activated apart; half-snake, leaky ReLU alone
        act = activated(x, snake)
        want = F.conv1d(F.pad(act, (6, 0)), weight, bias, dilation=3) + residual
        got = interpreted_kernels.snake_conv(x, alpha if snake else None, inverse if snake else None, snake, 0.1,
                                             weight.permute(2, 0, 1).contiguous(), bias, 3, residual, apart=apart)
        assert got.shape == want.shape and interpreted_kernels.aligned(got)  # 300 samples: channels every 304
        assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
        padded = interpreted_kernels.padded_taps(weight.permute(2, 0, 1))  # whole channel blocks: (3, 32, 32)
        assert padded.shape == (3, 32, 32) and padded[:, 24:].abs().sum() == padded[:, :, 20:].abs().sum() == 0
        again = interpreted_kernels.snake_conv(x, alpha if snake else None, inverse if snake else None, snake, 0.1,
                                               padded, bias, 3, residual, apart=apart)
        assert torch.equal(again, got)
        if apart:
            activated_apart = interpreted_kernels.activate(x, alpha, inverse, snake, 0.1)
            assert activated_apart.is_contiguous() and torch.allclose(activated_apart, act, atol=1e-5, rtol=1e-5)
            across = interpreted_kernels.activate(x, alpha, inverse, snake, 0.1, channels_last=True)
            assert across.stride() == (300 * 32, 1, 32) and torch.equal(across, activated_apart)  # 20 channels in 32
            padded = interpreted_kernels.activate(x, alpha, inverse, snake, 0.1, pad=6)  # a convolution's padding too
            assert torch.allclose(padded, F.pad(act, (6, 0)), atol=1e-5, rtol=1e-5)
    unadded = interpreted_kernels.snake_conv(x, None, None, 0, 0.1, weight.permute(2, 0, 1).contiguous(), bias, 3)
    assert torch.allclose(unadded, want - residual, atol=1e-4, rtol=1e-4)
    # the next activation applied as the result is written; then the next convolution of that, already activated
    chained = interpreted_kernels.snake_conv(x, None, None, 0, 0.1, weight.permute(2, 0, 1).contiguous(), bias, 3,
                                             next_act=(alpha[:10].repeat(3)[:12], inverse[:10].repeat(3)[:12], 12, 0.2))
    middle = want - residual
    head = middle[:, :12] + inverse[:10].repeat(3)[:12, None] * torch.sin(alpha[:10].repeat(3)[:12, None] *
                                                                           middle[:, :12]) ** 2
    activated_middle = torch.cat([head, F.leaky_relu(middle[:, 12:], 0.2)], dim=1)
    assert torch.allclose(chained, activated_middle, atol=1e-4, rtol=1e-4)
    square = torch.randn(24, 24, 3)
    again = interpreted_kernels.snake_conv(chained, alpha, inverse, 10, 0.1, square.permute(2, 0, 1).contiguous(),
                                           bias, 1, residual, activated=True)
    want_again = F.conv1d(F.pad(activated_middle, (2, 0)), square, bias) + residual
    assert torch.allclose(again, want_again, atol=1e-3, rtol=1e-4)
    # a stage's mean of its chains, each one's share added as it is written (want: the leaky ReLU's, the last above)
    total = torch.randn(2, 24, 300)
    summed = interpreted_kernels.snake_conv(x, None, None, 0, 0.1, weight.permute(2, 0, 1).contiguous(), bias, 3,
                                            residual, into=total.clone(), scale=1 / 3)
    assert torch.allclose(summed, total + want / 3, atol=1e-4, rtol=1e-4)


def test_a_folded_unit_adds_its_biases_in_the_activation_and_the_residual_add(interpreted_kernels):
    """kernel_activations with folded: the activation kernel adds the bias the convolution before it left out (not
    on the padding), and the residual add, one pass, adds the last bias and the residual, and scales (a mean)."""
    import torch.nn.functional as F

    torch.manual_seed(3)
    x, bias = torch.randn(2, 12, 40)[:, 2:], torch.randn(10)  # channels strided
    alpha, inverse = torch.rand(5) + 0.5, torch.rand(5) + 0.5
    shifted = x + bias[:, None]
    act = torch.cat([shifted[:, :5] + inverse[:, None] * torch.sin(alpha[:, None] * shifted[:, :5]) ** 2,
                     F.leaky_relu(shifted[:, 5:], 0.2)], dim=1)
    got = interpreted_kernels.activate(x, alpha, inverse, 5, 0.2, pad=4, bias=bias)
    assert torch.allclose(got, F.pad(act, (4, 0)), atol=1e-5, rtol=1e-5)
    conv, total = torch.randn(2, 10, 40), torch.randn(2, 10, 40)
    want = (conv + bias[:, None] + x) / 3
    assert torch.allclose(interpreted_kernels.add_residual(conv.clone(), bias, x, 1 / 3), want, atol=1e-6)
    into = total.clone()
    assert interpreted_kernels.add_residual(conv, bias, x, 1 / 3, into=into) is into
    assert torch.allclose(into, total + want, atol=1e-6)


def test_the_upsampling_kernel_is_activation_and_grouped_transposed_convolution(interpreted_kernels):
    """upsample against torch: the half-snake (or leaky ReLU alone), then conv_transpose1d with a group for each output
    channel, trimmed as NeMo's causal up-sampling trims it; from a strided input, at the nano codec's strides."""
    import torch.nn.functional as F

    torch.manual_seed(1)
    for c_in, c_out, stride, snake, right in ((8, 4, 3, 4, 3), (6, 2, 2, 0, 2), (4, 4, 7, 4, 7)):
        x = torch.randn(2, c_in + 2, 41)[:, 1 : c_in + 1]  # channels strided
        alpha, inverse = torch.rand(c_in) + 0.5, torch.rand(c_in) + 0.5
        weight, bias = torch.randn(c_in, 1, 2 * stride), torch.randn(c_out)
        act = torch.cat([x[:, :snake] + inverse[:snake, None] * torch.sin(alpha[:snake, None] * x[:, :snake]) ** 2,
                         F.leaky_relu(x[:, snake:], 0.01)], dim=1)
        full = F.conv_transpose1d(act, weight, bias, stride=stride, groups=c_out)
        want = full[..., : full.shape[-1] - right]
        got = interpreted_kernels.upsample(x, alpha if snake else None, inverse if snake else None, snake, 0.01,
                                           weight, bias, stride, 0, right)
        assert got.shape == want.shape == (2, c_out, 41 * stride) and interpreted_kernels.aligned(got)
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="not one output channel a group"):
        interpreted_kernels.upsample(x, None, None, 0, 0.01, torch.randn(4, 2, 14), torch.randn(4), 7, 0, 7)


@pytest.mark.parametrize(("c_in", "c_out"), [(20, 24), (70, 66)])  # one channel block; two (the 108-channel stage's)
def test_the_convolution_by_descriptors_is_the_convolution_by_pointers(interpreted_kernels, monkeypatch, c_in, c_out):
    """snake_conv(tma=True) under the interpreter, which runs descriptors too: activated apart into channels-last, the
    residual and a sum into a tensor by descriptors; the next activation applied and written channels-last, then
    convolved from there (DecoderPlan.tma with chained)."""
    torch.manual_seed(1)
    made = []
    descriptors = interpreted_kernels._descriptors
    monkeypatch.setattr(interpreted_kernels, "_descriptors", lambda *args: made.append(1) or descriptors(*args))
    x, residual = torch.randn(2, c_in, 300), torch.randn(2, c_out, 300)
    alpha, inverse = torch.rand(c_out) + 0.5, torch.rand(c_out) + 0.5
    first, second = torch.randn(3, c_out, c_in) / c_in, torch.randn(5, c_out, c_out) / c_out
    bias, bias2 = torch.randn(c_out), torch.randn(c_out)
    into = torch.randn(2, c_out, 300)
    made_by = {}  # by pointers, then by descriptors: (middle, out)
    for tma in (False, True):
        total = into.clone()
        middle = interpreted_kernels.snake_conv(x, alpha[:c_in], inverse[:c_in], c_in // 2, 0.1, first, bias, 3,
                                                apart=True, tma=tma, next_act=(alpha, inverse, c_out // 2, 0.2))
        assert interpreted_kernels.is_channels_last(middle) == tma
        out = interpreted_kernels.snake_conv(middle, None, None, 0, 0.1, second, bias2, 2, residual, activated=True,
                                             tma=tma, into=total, scale=1 / 3)
        assert out is total and len(made) == 2 * tma
        made_by[tma] = middle, out
    (want_middle, want), (middle, out) = made_by[False], made_by[True]
    assert torch.allclose(middle, want_middle, atol=1e-5, rtol=1e-5)
    assert torch.allclose(out, want, atol=1e-4, rtol=1e-4)
    assert interpreted_kernels.is_channels_last(interpreted_kernels.activate(x, alpha, inverse, 10, 0.1,
                                                                             channels_last=True))


def test_the_kernel_decoders_give_the_plain_decoders_audio(tiny_models, codec, interpreted_kernels, monkeypatch):
    monkeypatch.setattr(interpreted_kernels, "BLOCK_T", 1024)  # fewer programs: the interpreter runs each in Python
    fused = load_codec(str(tiny_models[1]), device="cpu", plan=replace(EAGER, fused=True))
    assert fused.plan.fused and not load_codec(str(tiny_models[1]), device="cpu", plan=replace(EAGER, fused=True),
                                               compile=False, channels_last=True).plan.fused
    rng = np.random.default_rng(4)
    codes = [rng.integers(0, 4032, size=(4, 2))]
    (want,) = codec.decode(codes)
    activations = []  # the kernels activating apart (fused_apart), counted
    monkeypatch.setattr(interpreted_kernels, "activate", lambda *args, act=interpreted_kernels.activate, **more:
                        activations.append(1) or act(*args, **more))
    plans = [replace(EAGER, fused=True, fused_apart=True), replace(EAGER, kernel_activations=True, wide_stages=2),
             replace(EAGER, kernel_activations=True, folded=True),  # cuDNN's convolutions without their biases
             DecoderPlan(), DecoderPlan(chained=True),  # the default, every kernel; and the middles activated as written
             DecoderPlan(tma=True), DecoderPlan(tma=True, chained=True)]  # the convolutions' tiles by descriptors
    for each, apart in [(fused, False)] + [(load_codec(str(tiny_models[1]), device="cpu", plan=p), True) for p in plans]:
        activations.clear()
        (got,) = each.decode(codes)
        assert got.shape == want.shape and bool(activations) == apart
        assert np.abs(got - want).max() < 1e-5 * max(1.0, float(np.abs(want).max()))


def test_a_codec_whose_kernels_fail_decodes_without_them(tiny_models, codec, interpreted_kernels, monkeypatch):
    """As on a card with too little shared memory for the kernels' tiles: Triton's error is caught while the
    codec warms its kernels up (on a GPU, as it loads), said in one line (the render prints it as a warning),
    and the codec decodes in torch's kernels."""
    def fails(*args, **kwargs):
        raise RuntimeError("out of resource: shared memory, Required: 262144, Hardware limit: 101376\nmore")

    monkeypatch.setattr(interpreted_kernels, "_descriptors", fails)  # the descriptors' tiles alone: by pointers
    loaded = load_codec(str(tiny_models[1]), device="cpu", plan=DecoderPlan())
    assert loaded.plan.tma
    loaded._warm_kernels(channels_last=False)
    assert loaded.plan == replace(DecoderPlan(), tma=False)
    assert loaded.kernels_failed.startswith("the codec's descriptor kernels could not run on cpu, so it decodes by")
    monkeypatch.setattr(interpreted_kernels, "activate", fails)  # every kernel: without them
    loaded = load_codec(str(tiny_models[1]), device="cpu", plan=DecoderPlan())
    assert loaded.plan.kernels
    loaded._warm_kernels(channels_last=False)
    assert not loaded.plan.fused and not loaded.plan.kernel_activations and not loaded.plan.kernels
    assert loaded.kernels_failed.endswith("out of resource: shared memory, Required: 262144, Hardware limit: 101376")
    assert "cpu" in loaded.kernels_failed and "\n" not in loaded.kernels_failed
    codes = [np.random.default_rng(5).integers(0, 4032, size=(4, 3))]
    np.testing.assert_allclose(loaded.decode(codes)[0], codec.decode(codes)[0], atol=1e-6)
    assert codec.kernels_failed == ""


def test_descriptors_are_off_where_the_device_has_none(tiny_models, interpreted_kernels, monkeypatch):
    """Where `descriptors_usable` says no (a GPU before Hopper, or float32 on a GPU), the codec's plan has tma off,
    so the fused units stay at FUSED_MOST_CHANNELS; elsewhere (the interpreter here) it keeps it."""
    assert load_codec(str(tiny_models[1]), device="cpu", plan=DecoderPlan()).plan.tma
    monkeypatch.setattr(interpreted_kernels, "descriptors_usable", lambda device, dtype: False)
    loaded = load_codec(str(tiny_models[1]), device="cpu", plan=DecoderPlan())
    assert loaded.plan == replace(DecoderPlan(), tma=False)


def test_fused_kernels_are_a_gpu_setting(tiny_models, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    loaded = load_codec(str(tiny_models[1]), device="cpu", plan=DecoderPlan())
    assert not loaded.plan.fused and not loaded.plan.kernel_activations and loaded.kernels_failed == ""


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_the_fused_kernel_compiles_for_hopper_within_its_shared_memory(monkeypatch, dtype):
    """Each tile width the decoder fuses (64 and 32 channels), compiled for an H100/H200 (sm_90) by Triton's own
    ptxas, no GPU needed: with the hardware's sine, in the 227 KB of shared memory a block may have there
    (pipelined float32 tiles needed up to 560 KB), bf16 on the tensor cores (float32 in full precision, as
    the float32 decoder computes). The up-sampling kernel too, at the first stage's width and the last's."""
    import importlib

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # compiled, not interpreted
    import renderer.codec_kernels as kernels

    kernels = importlib.reload(kernels)
    for channels in (54, 27):
        compiled = kernels.compile_for(90, dtype, residual=True, c_in=channels, c_out=channels)
        assert compiled.metadata.shared <= 227 * 1024
        ptx = compiled.asm["ptx"]  # Hopper's warp-group MMA for 64-channel tiles, the older MMA for 32
        assert "sin.approx" in ptx
        assert ("wgmma.mma_async" in ptx or "mma.sync" in ptx) == (dtype == torch.bfloat16)
        chained = kernels.compile_for(90, dtype, residual=False, c_in=channels, c_out=channels, activate=False,
                                      out_activate=True)  # DecoderPlan.chained's first convolution
        assert chained.metadata.shared <= 227 * 1024 and "sin.approx" in chained.asm["ptx"]
        if dtype == torch.bfloat16:  # DecoderPlan.tma: every tile by descriptors, none loaded a sample at a time
            by_descriptors = kernels.compile_for(90, dtype, residual=True, c_in=channels, c_out=channels,
                                                 activate=False, tma=True)
            ptx = by_descriptors.asm["ptx"]
            assert by_descriptors.metadata.shared <= 227 * 1024 and "wgmma.mma_async" in ptx  # samples by channels
            assert "cp.async.bulk.tensor.3d.shared" in ptx and "cp.async.bulk.tensor.3d.global.shared" in ptx  # x; y
            assert ptx.count("ld.global.b16") <= 16  # the bias's, a value a channel (by pointers: 144 at 27)
    if dtype == torch.bfloat16:  # the 108-channel stage, fused only by descriptors: two channel blocks, 256 x 8 warps
        wide = kernels.compile_for(90, dtype, residual=True, c_in=108, c_out=108, activate=False, tma=True)
        assert wide.metadata.shared <= 227 * 1024 and "wgmma.mma_async" in wide.asm["ptx"]
    for channels in (432, 27):  # the up-sampling kernel, at the first stage's width and the last's
        compiled = kernels.compile_upsample_for(90, dtype, channels)
        assert compiled.metadata.shared <= 227 * 1024 and "sin.approx" in compiled.asm["ptx"]
