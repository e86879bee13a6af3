"""KaniTTS's token layout, prompts and answers, as the model was trained.

The model is a causal LM over one vocabulary: the text tokenizer's 64,400 ids, a few control
tokens, then 4 codebooks of 4,032 NeMo nano-codec codes. A frame of audio is 4 tokens in codebook
order; the codec runs at 12.5 frames a second, so 50 tokens make 1 s of audio.
"""
from __future__ import annotations

import numpy as np

from renderer.codec import CODEBOOK_SIZE, FRAMES_PER_SECOND, NUM_CODEBOOKS

TEXT_VOCAB = 64400  # ids of the text tokenizer
START_OF_TEXT = 1  # the tokenizer's BOS
END_OF_TEXT = 2
START_OF_SPEECH = TEXT_VOCAB + 1
END_OF_SPEECH = TEXT_VOCAB + 2
START_OF_HUMAN = TEXT_VOCAB + 3
END_OF_HUMAN = TEXT_VOCAB + 4
START_OF_AI = TEXT_VOCAB + 5
END_OF_AI = TEXT_VOCAB + 6
PAD = TEXT_VOCAB + 7
AUDIO_TOKEN_BASE = TEXT_VOCAB + 10  # id of codebook 0, code 0
AUDIO_TOKEN_END = AUDIO_TOKEN_BASE + NUM_CODEBOOKS * CODEBOOK_SIZE  # 80538: the model's vocab
TOKENS_PER_FRAME = NUM_CODEBOOKS
TOKENS_PER_SECOND = TOKENS_PER_FRAME * FRAMES_PER_SECOND  # 50 audio tokens a second

# The model card's sampling.
TEMPERATURE = 0.6
TOP_P = 0.95
REPETITION_PENALTY = 1.1

# The prompt ends in the answer's first two tokens, so that every generated token is audio
# (or END_OF_SPEECH) and the frame position is just len(output) % 4.
ANSWER_PREFIX = (START_OF_AI, START_OF_SPEECH)


def prompt_ids(text_ids: list[int], ) -> list[int]:
    """The token ids of one chunk's prompt.

    text_ids: the tokenizer's ids of "{speaker}: {text}" (or "{text}"), starting with its BOS.
    """
    return [START_OF_HUMAN, *text_ids, END_OF_TEXT, END_OF_HUMAN, *ANSWER_PREFIX]


def speaker_text(text: str, speaker: str | None) -> str:
    """The text a chunk's prompt carries: the speaker's name first, as the model was trained."""
    return f"{speaker}: {text}" if speaker else text


def audio_token(codebook: int, code: int) -> int:
    return AUDIO_TOKEN_BASE + CODEBOOK_SIZE * codebook + code


def answer_codes(token_ids: list[int] | np.ndarray) -> tuple[np.ndarray, bool]:
    """Codes of one generated answer.

    token_ids: what the model generated after the prompt. Returns ((4, frames) int64 codes in
    0..4031, finished), finished being True when END_OF_SPEECH closed the answer. Tokens after
    END_OF_SPEECH are ignored; a trailing partial frame is dropped. Raises ValueError when a
    token is out of place (the frame processor makes that impossible).
    """
    ids = np.asarray(token_ids, dtype=np.int64)
    stops = np.flatnonzero(ids == END_OF_SPEECH)
    finished = stops.size > 0
    if finished:
        ids = ids[: stops[0]]
    frames = len(ids) // TOKENS_PER_FRAME
    ids = ids[: frames * TOKENS_PER_FRAME].reshape(frames, TOKENS_PER_FRAME).T  # (4, frames)
    codes = ids - AUDIO_TOKEN_BASE - CODEBOOK_SIZE * np.arange(TOKENS_PER_FRAME)[:, None]
    if codes.size and (codes.min() < 0 or codes.max() >= CODEBOOK_SIZE):
        raise ValueError("a generated token is not an audio code of its frame position")
    return codes, finished


def max_new_tokens(seconds: float, margin: float) -> int:
    """The token budget for a chunk of `seconds` estimated speech: a whole number of frames
    plus one token for END_OF_SPEECH."""
    frames = int(np.ceil(seconds * margin * FRAMES_PER_SECOND))
    return frames * TOKENS_PER_FRAME + 1
