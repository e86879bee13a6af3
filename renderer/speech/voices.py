"""The voices: a KaniTTS model per language, its speakers, and the codec they share."""
from __future__ import annotations

from dataclasses import dataclass

from renderer.book import RendererError, Voice
from renderer.codec import DEFAULT_CODEC


@dataclass(frozen=True)
class Language:
    code: str
    model: str  # hub id
    speakers: tuple[str, ...]  # () when the model card names none: the prompt carries no speaker


LANGUAGES = {
    lang.code: lang
    for lang in (
        Language("en", "nineninesix/kani-tts-400m-en", ("andrew", "katie")),
        Language("de", "nineninesix/kani-tts-400m-de", ()),
        Language("es", "nineninesix/kani-tts-400m-es", ()),
        Language("zh", "nineninesix/kani-tts-400m-zh", ()),
        Language("ko", "nineninesix/kani-tts-400m-ko", ()),
        Language("ar", "nineninesix/kani-tts-400m-ar", ()),
    )
}


class VoiceError(RendererError):
    """A --voice that names no language or speaker we have."""


def resolve_voice(spec: str, model: str | None = None, codec: str | None = None) -> Voice:
    """`en` (the language's model and first speaker) or `en:katie` -> Voice; --model/--codec override.

    Raises VoiceError naming the voice and what there is to choose from.
    """
    code, _, speaker = spec.strip().partition(":")
    language = LANGUAGES.get(code.lower())
    if language is None:
        raise VoiceError(f"unknown voice '{spec}': choose a language of {', '.join(LANGUAGES)} (see 'render voices')")
    speaker = speaker.strip().lower() or None
    if speaker is None and language.speakers:
        speaker = language.speakers[0]
    if speaker is not None and language.speakers and speaker not in language.speakers:
        raise VoiceError(f"voice '{spec}': the {code} model has no speaker '{speaker}' "
                         f"(speakers: {', '.join(language.speakers)})")
    return Voice(language=language.code, speaker=speaker, model=model or language.model, codec=codec or DEFAULT_CODEC)
