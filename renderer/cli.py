"""The `render` command: thin Click commands that parse, call the library, and print."""
from __future__ import annotations

import os
from pathlib import Path

import click

from renderer.book import RendererError

ENGINE_DEFAULTS = None  # filled lazily: importing the engine module must stay cheap


class DefaultGroup(click.Group):
    """`render BOOK ...` means `render book BOOK ...`; other first words are subcommands."""

    default = "book"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, self.default)
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup)
@click.version_option(package_name="renderer")
def main():
    """Render books into audiobooks with KaniTTS.

    \b
    render BOOK [--voice en] [--format wav|flac|mp3|m4b] [--out DIR]
    render voices
    render models tiny DIR
    """


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


@main.command("book")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--voice", default="en", show_default=True, help="A language (en) or language:speaker (en:katie).")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [default: a folder named after the book, beside it].")
@click.option("--format", "fmt", type=click.Choice(["wav", "flac", "mp3", "m4b"]), default="wav", show_default=True)
@click.option("--model", help="KaniTTS model: a hub id or a local folder (overrides the voice's).")
@click.option("--codec", help="Nano codec: a hub id or a local .nemo file (overrides the voice's).")
@click.option("--quantize/--no-quantize", default=True, show_default=True, help="bitsandbytes 4-bit on GPU.")
@click.option("--max-seqs", type=click.IntRange(1), default=256, show_default=True, help="Chunks generated at once.")
@click.option("--gpu-memory", type=click.FloatRange(0.05, 0.99), default=0.5, show_default=True,
              help="Fraction of GPU memory the engine may take.")
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="New seeds tried for a chunk that never ends.")
@click.option("--keep-runaways", is_flag=True, help="Keep a chunk that never ends (cut at its budget) instead of failing its chapter.")
@click.option("--seed", type=int, default=0, show_default=True, help="Mixed into every chunk's seed.")
@click.option("--eager", is_flag=True, help="No torch.compile or CUDA graphs: faster start, slower generation.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def book_command(path, voice, out, fmt, model, codec, quantize, max_seqs, gpu_memory, retries, keep_runaways, seed, eager, quiet):
    """Render BOOK (.epub or .md) into one audio file per chapter (m4b: one file with chapters)."""
    from renderer.read import read_book
    from renderer.render import RenderOptions, render_book
    from renderer.speech.engine import EngineOptions
    from renderer.speech.voices import resolve_voice

    try:
        resolved = resolve_voice(voice, model, codec)
        book = read_book(path)
        for warning in book.warnings:
            click.echo(f"warning: {warning}", err=True)
        out = out or path.with_suffix("")
        engine = EngineOptions(quantize=quantize, max_num_seqs=max_seqs, gpu_memory_utilization=gpu_memory,
                               retries=retries, keep_runaways=keep_runaways, seed=seed, enforce_eager=eager)
        report = render_book(book, RenderOptions(voice=resolved, out=out, fmt=fmt, engine=engine, progress=not quiet))
    except RendererError as err:
        raise _fail(err) from err
    for line in report.skipped:
        click.echo(f"skipped {line}", err=True)
    for path_written in report.written:
        click.echo(str(path_written))
    if report.runaways_kept:
        click.echo(f"warning: {report.runaways_kept} chunk(s) never ended and were kept cut at their budget", err=True)
    click.echo(f"{len(report.written)} file(s), {report.audio_seconds:.1f} s of audio, voice {resolved.name}; "
               f"{report.chunks} chunks: {report.rendered} rendered, {report.reused} reused", err=True)
    if report.failures:
        for line in report.failures:
            click.echo(f"error: {line}", err=True)
        raise click.ClickException(f"{len(report.failures)} chunk(s) failed; their chapters were not written")


@main.command("voices")
def voices_command():
    """List the voices: languages, their models and speakers."""
    from renderer.speech.voices import LANGUAGES

    for lang in LANGUAGES.values():
        speakers = ", ".join(lang.speakers) if lang.speakers else "(no named speakers)"
        click.echo(f"{lang.code:4} {lang.model:36} {speakers}")


@main.group("models")
def models_group():
    """Models the project can build itself."""


@models_group.command("tiny")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--size", type=click.Choice(["tiny", "full"]), default="tiny", show_default=True,
              help="tiny: small and fast on a CPU; full: kani-tts-400m's real size.")
@click.option("--seed", type=int, default=0, show_default=True)
def models_tiny(folder, size, seed):
    """Build random-weight models with the real architectures into FOLDER (they make noise, not speech)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from renderer.tiny import build_models

    model_dir, codec_file = build_models(folder, size, seed)
    click.echo(f"--model {model_dir} --codec {codec_file}")
