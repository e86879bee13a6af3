"""Random-weight models with the real architectures, for tests and for newcomers without weights.

`build_models(folder, size)` writes a KaniTTS-shaped LFM2 (folder/kani, loadable by vLLM) and a
nano-codec `.nemo` (folder/codec.nemo, loadable by NeMo). Their output is noise, not speech: use
them to test mechanics, shapes, lengths and speed, never quality.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from renderer.codec import FSQ_LEVELS, SAMPLE_RATE, SAMPLES_PER_FRAME, UPSAMPLE_RATES
from renderer.speech import kani


@dataclass(frozen=True)
class LMSize:
    hidden: int
    layers: int
    attention_layers: tuple[int, ...]  # the rest are LFM2 short-convolution layers
    heads: int
    kv_heads: int
    ff_dim: int  # LFM2's block_ff_dim, before its auto-adjustment
    dtype: str = "bfloat16"  # the real model's


@dataclass(frozen=True)
class CodecSize:
    decoder_channels: int  # >= 64: five halvings must leave the half-snake more than one channel
    encoder_channels: int


LM_SIZES = {
    # kani-tts-400m: the LFM2-350M body with KaniTTS's 80,538-token vocabulary.
    "full": LMSize(hidden=1024, layers=16, attention_layers=(2, 5, 8, 10, 12, 14), heads=16, kv_heads=8, ff_dim=6656),
    # Head size 32: the smallest vLLM's CPU attention takes.
    # float32 (the engine runs it so; vLLM alone would downcast it to bf16): in bf16 a row's logits
    # shift with the batch around it, enough on some CPUs to flip the tiny model's near-tied codes.
    "tiny": LMSize(hidden=128, layers=4, attention_layers=(1, 3), heads=4, kv_heads=2, ff_dim=256, dtype="float32"),
}
CODEC_SIZES = {
    "full": CodecSize(decoder_channels=864, encoder_channels=24),
    "tiny": CodecSize(decoder_channels=64, encoder_channels=4),
}
MAX_POSITIONS = 4096  # tokens: a 12-s chunk is about 600 audio tokens plus its prompt
TOKENIZER_SPECIALS = ("<|pad|>", "<|startoftext|>", "<|endoftext|>")  # ids 0, 1 (BOS), 2


def build_models(folder: Path, size: str = "tiny", seed: int = 0) -> tuple[Path, Path]:
    """Write folder/kani (an LFM2 model folder with a byte-level tokenizer) and folder/codec.nemo.

    Returns (model folder, codec file).
    """
    folder.mkdir(parents=True, exist_ok=True)
    model_dir = build_lm(folder / "kani", LM_SIZES[size], seed)
    codec_file = build_codec(folder / "codec.nemo", CODEC_SIZES[size], seed)
    return model_dir, codec_file


def build_lm(folder: Path, size: LMSize, seed: int = 0) -> Path:
    import torch
    from transformers import Lfm2Config, Lfm2ForCausalLM

    torch.manual_seed(seed)
    config = Lfm2Config(
        vocab_size=kani.AUDIO_TOKEN_END,
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        layer_types=["full_attention" if i in size.attention_layers else "conv" for i in range(size.layers)],
        block_ff_dim=size.ff_dim,
        intermediate_size=size.ff_dim,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=kani.START_OF_TEXT,
        eos_token_id=kani.END_OF_SPEECH,
        pad_token_id=kani.PAD,
        tie_word_embeddings=True,
        torch_dtype=size.dtype,
    )
    model = Lfm2ForCausalLM(config).to(getattr(torch, size.dtype))
    model.save_pretrained(folder)
    # vLLM's Lfm2 reads these; transformers' Lfm2Config does not write them.
    path = folder / "config.json"
    data = json.loads(path.read_text())
    data.update(conv_dim=size.hidden, block_dim=size.hidden)
    path.write_text(json.dumps(data, indent=2))
    _tokenizer().save_pretrained(folder)
    return folder


def _tokenizer():
    """A byte-level tokenizer with LFM2's BOS id (1), standing in for the real 64,400-token one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(TOKENIZER_SPECIALS)}
    for byte_char in pre_tokenizers.ByteLevel.alphabet():
        vocab[byte_char] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    bos = TOKENIZER_SPECIALS[kani.START_OF_TEXT]
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, kani.START_OF_TEXT)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=TOKENIZER_SPECIALS[kani.END_OF_TEXT],
        pad_token=TOKENIZER_SPECIALS[0],
    )


def codec_config(size: CodecSize) -> dict:
    """The nano codec's configuration (nvidia/nemo-nano-codec-22khz-0.6kbps-12.5fps), widths from `size`."""
    embedding_dim = 16
    return {
        "sample_rate": SAMPLE_RATE,
        "samples_per_frame": SAMPLES_PER_FRAME,
        "audio_encoder": {
            "_target_": "nemo.collections.tts.modules.audio_codec_modules.HiFiGANEncoder",
            "down_sample_rates": list(reversed(UPSAMPLE_RATES)),
            "encoded_dim": embedding_dim,
            "base_channels": size.encoder_channels,
            "activation": "lrelu",
            "pad_mode": "replicate",
        },
        "audio_decoder": {
            "_target_": "nemo.collections.tts.modules.audio_codec_modules.CausalHiFiGANDecoder",
            "up_sample_rates": list(UPSAMPLE_RATES),
            "input_dim": embedding_dim,
            "base_channels": size.decoder_channels,
            "activation": "half_snake",
            "output_activation": "clamp",
            "pad_mode": "zeros",
            "n_groups_equal_to_out_channels": True,
        },
        "vector_quantizer": {
            "_target_": "nemo.collections.tts.modules.audio_codec_modules.GroupFiniteScalarQuantizer",
            "num_groups": len(FSQ_LEVELS),
            "num_levels_per_group": list(FSQ_LEVELS),
        },
        # Training only, and 41 M parameters at NeMo's defaults: none, so the file stays small.
        "discriminator": {
            "_target_": "nemo.collections.tts.modules.audio_codec_modules.Discriminator",
            "discriminators": [],
        },
        "generator_loss": {"_target_": "nemo.collections.tts.losses.audio_codec_loss.GeneratorSquaredLoss"},
        "discriminator_loss": {"_target_": "nemo.collections.tts.losses.audio_codec_loss.DiscriminatorSquaredLoss"},
        "loss_resolutions": [[32, 8, 32], [64, 16, 64]],
        "mel_loss_dims": [5, 10],
        "commit_loss_scale": 0.0,
    }


def build_codec(path: Path, size: CodecSize, seed: int = 0) -> Path:
    import os

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from nemo.collections.tts.models import AudioCodecModel
    from omegaconf import OmegaConf

    torch.manual_seed(seed)
    model = AudioCodecModel(cfg=OmegaConf.create(codec_config(size)))
    model.save_to(str(path))
    return path
