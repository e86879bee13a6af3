"""A two-scene script rendered end to end on the tiny models: each chunk in its speaker's voice,
and speakers of different models rendered in one run, one engine per model."""
from __future__ import annotations

import shutil

import soundfile
from click.testing import CliRunner
from conftest import SAMPLES
from transformers import AutoTokenizer

from renderer.book import Voice
from renderer.cast import Cast, load_cast
from renderer.cli import main
from renderer.read import read_book
from renderer.render import RenderOptions, render_book
from renderer.speech import kani
from renderer.speech.engine import EngineOptions
from renderer.speech.voices import resolve_voice
from renderer.store import TakeStore, take_key
from renderer.text.chunk import chunk_book

SCRIPT = SAMPLES / "two-scenes.script"
KEEP = EngineOptions(retries=0, keep_runaways=True)


def test_script_renders_each_speech_in_its_speakers_voice(tiny_models, tmp_path):
    model, codec = tiny_models
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [str(a) for a in (SCRIPT, "--model", model, "--codec", codec, "--out", out,
                                                        "--keep-runaways", "--retries", "0", "--quiet")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.wav")) == ["01 - Scene 1. The Lamp Room.wav",
                                                          "02 - Scene 2. The Shore at Dawn.wav"]
    assert all(soundfile.info(p).frames > 0 for p in out.glob("*.wav"))

    book = read_book(SCRIPT)
    voice = resolve_voice("en", str(model), str(codec))
    cast = load_cast(book, voice, model=str(model), codec=str(codec))
    chunks = chunk_book(book, voice, cast=cast)
    speakers = {(c.index, p_index): p.speaker for c in book.chapters for p_index, p in enumerate(c.paragraphs)}
    tokenizer = AutoTokenizer.from_pretrained(model)
    store = TakeStore(out)
    expected = {"KEEPER": "andrew", "MARA": "katie", "BOY": "andrew", "KEEPER & MARA": "andrew"}
    for chunk in chunks:
        speaker = speakers.get((chunk.chapter, chunk.paragraph))
        want = "katie" if chunk.is_title else expected[speaker]  # titles: the narrator's voice
        assert chunk.voice.speaker == want, (speaker, chunk.text)
        assert store.has(take_key(chunk, KEEP.take_settings()))  # rendered with exactly this voice
        prompt = kani.prompt_ids(tokenizer(kani.speaker_text(chunk.text, chunk.voice.speaker))["input_ids"])
        spoken = tokenizer.decode(prompt[2:-4])
        assert spoken.startswith(f"{want}: ")


def test_speakers_of_two_models_render_in_one_run(tiny_models, tmp_path):
    model, codec = tiny_models
    other = tmp_path / "other-model"
    shutil.copytree(model, other)  # another model folder: another engine
    book = read_book(SCRIPT)
    a = Voice("en", "andrew", str(model), str(codec))
    b = Voice("en", "katie", str(other), str(codec))
    cast = Cast(voices={"keeper": a, "boy": a, "keeper & mara": a, "mara": b}, narrator=b)  # keys as the cast folds them
    report = render_book(book, RenderOptions(voice=a, out=tmp_path / "out", engine=KEEP, progress=False), cast=cast)
    assert report.engines == [str(model), str(other)] or report.engines == [str(other), str(model)]
    assert report.rendered == report.chunks and not report.failures
    assert len(report.written) == 2
    # reported: every take decoded; a script's short takes cost least in one or two batches (0.68 here)
    assert 0.5 < report.decode_fill <= 1.0
