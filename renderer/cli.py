"""The `render` command: thin Click commands that parse, call the library, and print."""
from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from renderer.audio.export import AUTHOR_TITLE, LAYOUTS
from renderer.audio.loudness import DEFAULT_LUFS, loudness_target
from renderer.book import RendererError

EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C


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
    render check FILE...
    render voices
    render models tiny DIR
    """
    # vLLM's own log lines (and the tracebacks it logs as warnings) drown the progress bars;
    # VLLM_LOGGING_LEVEL=INFO brings them back.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


@contextmanager
def _stop_on_sigterm():
    """SIGTERM stops a render the way Ctrl-C does: cleanly, keeping every finished chunk."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(err: Exception) -> click.ClickException:
    return click.ClickException(str(err))


def _script_options(command):
    """--input, --cast and --directions, which `render` and `render inspect` both take."""
    for option in reversed((
        click.option("--input", "input_kind", type=click.Choice(["auto", "epub", "markdown", "script"]), default="auto",
                     show_default=True, help="Read BOOK as this, whatever its extension (auto: by the extension)."),
        click.option("--cast", "cast_file", type=click.Path(path_type=Path),
                     help="A script's cast: TOML lines 'SPEAKER = \"en:katie\"' (over the script's own [cast])."),
        click.option("--directions", type=click.Choice(["skip", "narrate"]), default="skip", show_default=True,
                     help="A script's stage directions: left out, or read by the cast's narrator."),
    )):
        command = option(command)
    return command


LOCAL_RAY = "local"  # what a bare --ray stands for


def _ray_options(command):
    """--ray [ADDRESS] and --ray-engines, which `render`, `render jobs run` and `render jobs serve` take."""
    for option in reversed((
        click.option("--ray", "ray_address", is_flag=False, flag_value=LOCAL_RAY, default=None, metavar="[ADDRESS]",
                     help="Render on Ray: the cluster at ADDRESS, or bare, RAY_ADDRESS's or a local Ray started "
                          "for this run (pip install 'ray[data]')."),
        click.option("--ray-engines", type=click.IntRange(0), default=0, show_default=True,
                     help="With --ray: speech actors (0: one per GPU of the cluster, 1 without GPUs)."),
    )):
        command = option(command)
    return command


def ray_options(address: str | None, engines: int):
    """The RayOptions of --ray and --ray-engines; None without --ray."""
    from renderer.cluster import RayOptions

    if address is None:
        return None
    return RayOptions(address=None if address == LOCAL_RAY else address, engines=engines)


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
@click.option("--engines", type=click.IntRange(0), default=0, show_default=True,
              help="Speech engines side by side on the GPU, sharing --gpu-memory (0: on a GPU as many as its --gpu-memory share holds at 4.2 GiB each, 1 to 3; 1 on the CPU).")
@click.option("--data-parallel", type=click.IntRange(0), default=1, show_default=True, metavar="N",
              help="Spread the engines over N GPUs of this host, --engines on each, with a codec on each "
                   "(0: every GPU).")
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="New seeds tried for a chunk that never ends.")
@click.option("--keep-runaways", is_flag=True, help="Keep a chunk that never ends (cut at its budget) instead of failing its chapter.")
@click.option("--seed", type=int, default=0, show_default=True, help="Mixed into every chunk's seed.")
@click.option("--eager", is_flag=True, help="No torch.compile or CUDA graphs: faster start, slower generation.")
@click.option("--compile-codec", is_flag=True,
              help="torch.compile the codec's decoder: a minute or two more at start, for faster decoding.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--chapters", metavar="LIST", help="Render only these chapters, numbered as `render inspect` shows them (3-5,9).")
@click.option("--lexicon", type=click.Path(path_type=Path), help="Pronunciation lexicon: one 'written = spoken' a line.")
@click.option("--all-matter", is_flag=True, help="Also read the front and back matter and the notes (cover, contents, index...).")
@click.option("--loudness", default=f"{DEFAULT_LUFS:g}", show_default=True, metavar="LUFS|off",
              help="Every chapter's loudness (integrated LUFS, true peaks limited to -3.5 dBTP); off: as assembled.")
@click.option("--layout", type=click.Choice(LAYOUTS), default=LAYOUTS[0], show_default=True,
              help="author-title: files go into OUT/Author/Title/ (OUT defaults to the book's folder), as "
                   "audiobook servers file them.")
@_ray_options
@_script_options
def book_command(path, voice, out, fmt, model, codec, quantize, max_seqs, gpu_memory, engines, data_parallel, retries,
                 keep_runaways, seed, eager, compile_codec, quiet, chapters, lexicon, all_matter, loudness, layout,
                 ray_address, ray_engines, input_kind, cast_file, directions):
    """Render BOOK (.epub or .md) into one audio file per chapter (m4b: one file with chapters)."""
    from renderer.audio.export import layout_folder
    from renderer.cast import load_cast
    from renderer.inspect import chapter_words, spoken_book, summary_line
    from renderer.render import RenderOptions, render_book
    from renderer.speech.engine import EngineOptions
    from renderer.speech.voices import resolve_voice

    try:
        target = loudness_target(loudness)
        resolved = resolve_voice(voice, model, codec)
        book = spoken_book(path, all_matter, lexicon, chapters, input_kind)
        cast = load_cast(book, resolved, cast_file, directions, model, codec)
        for warning in book.warnings:
            click.echo(f"warning: {warning}", err=True)
        out = layout_folder(out or path.parent, book) if layout == AUTHOR_TITLE else out or path.with_suffix("")
        voices = [cast.narrator, *cast.voices.values()] if cast else [resolved]
        engine = EngineOptions(quantize=quantize, max_num_seqs=max_seqs, gpu_memory_utilization=gpu_memory,
                               retries=retries, keep_runaways=keep_runaways, seed=seed, enforce_eager=eager,
                               replicas=engines, data_parallel=data_parallel, compile_codec=compile_codec)
        with _stop_on_sigterm():
            options = RenderOptions(voice=resolved, out=out, fmt=fmt, engine=engine, progress=not quiet, loudness=target,
                                    narrator=", ".join(dict.fromkeys(v.name for v in voices)))
            report = render_book(book, options, cast=cast, cluster=ray_options(ray_address, ray_engines))
    except RendererError as err:
        raise _fail(err) from err
    except KeyboardInterrupt:
        click.echo(f"\nStopped. Every finished chunk is kept in {out / '.renderer'}; run the same command "
                   "again to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    for line in report.skipped:
        click.echo(f"skipped {line}", err=True)
    for path_written in report.written:
        click.echo(str(path_written))
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if report.runaways_kept:
        click.echo(f"warning: {report.runaways_kept} chunk(s) never ended and were kept cut at their budget", err=True)
    click.echo(f"{len(report.written)} file(s) written, {report.up_to_date} already up to date, "
               f"{report.audio_seconds:.1f} s of audio, voice {resolved.name}; "
               f"{report.chunks} chunks: {report.rendered} rendered, {report.reused} reused", err=True)
    click.echo(summary_line(len(book.chapters), sum(chapter_words(c, cast) for c in book.chapters),
                            len(book.warnings) + len(report.skipped)), err=True)
    if report.failures:
        for line in report.failures:
            click.echo(f"error: {line}", err=True)
        raise click.ClickException(f"{len(report.failures)} chunk(s) failed; their chapters were not written")


@main.command("status")
@click.argument("out", type=click.Path(path_type=Path))
def status_command(out):
    """Show a render's progress in output folder OUT: per chapter, chunks done and the file's state."""
    from renderer.status import render_status

    try:
        lines = render_status(out)
    except RendererError as err:
        raise _fail(err) from err
    for line in lines:
        click.echo(line)


@main.command("check")
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path))
def check_command(files):
    """Check audio files (a folder: its audio files) against ACX's audiobook standard, one line each:
    RMS -23 to -18 dB, peak at most -3 dBFS, noise floor at most -60 dB, head 0.5-1 s, tail 1-5 s.
    Exits non-zero if any file fails or cannot be read."""
    from renderer.check import check_paths

    checked = failed = 0
    for result in check_paths(list(files)):
        checked += 1
        if isinstance(result, RendererError):
            click.echo(f"Error: {result}", err=True)
        else:
            click.echo(result.line())
        failed += isinstance(result, RendererError) or not result.passed
    if failed:
        raise click.ClickException(f"{failed} of {checked} file(s) fail ACX or cannot be read")


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


@main.command("inspect")
@click.argument("path", metavar="BOOK", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object: title, author, language, words, seconds, chapters.")
@click.option("--text", "text_of", metavar="LIST", help="Print these chapters' chunks (3, or 3-5,9) as the model will read them, one a line.")
@click.option("--voice", default="en", show_default=True, help="A language (en) or language:speaker (en:katie).")
@click.option("--lexicon", type=click.Path(path_type=Path), help="Pronunciation lexicon: one 'written = spoken' a line.")
@click.option("--all-matter", is_flag=True, help="Also read the front and back matter and the notes (cover, contents, index...).")
@_script_options
def inspect_command(path, as_json, text_of, voice, lexicon, all_matter, input_kind, cast_file, directions):
    """Show BOOK as it will be spoken, without loading a model: per chapter its words, chunks and time."""
    import json

    from renderer.cast import load_cast
    from renderer.inspect import book_chunks, inspect_book, select_chapters, spoken_book, summary_line, table
    from renderer.speech.voices import resolve_voice

    try:
        resolved = resolve_voice(voice)
        book = spoken_book(path, all_matter, lexicon, kind=input_kind)
        cast = load_cast(book, resolved, cast_file, directions)
        shown = select_chapters(book, text_of) if text_of else book
    except RendererError as err:
        raise _fail(err) from err
    for warning in book.warnings:
        click.echo(f"warning: {warning}", err=True)
    inspection = inspect_book(shown, resolved, cast)
    if text_of:
        for chunks in book_chunks(shown, resolved, cast).values():
            click.echo("".join(f"{chunk.text}\n" for chunk in chunks), nl=False)
    elif as_json:
        click.echo(json.dumps(inspection, ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(table(inspection)))
    silent = sum(1 for chapter in inspection["chapters"] if not chapter["chunks"])
    click.echo(summary_line(len(inspection["chapters"]) - silent, inspection["words"], len(book.warnings) + silent),
               err=True)


@main.group("jobs")
@click.option("--jobs-dir", type=click.Path(path_type=Path),
              help="The jobs folder [default: $RENDER_JOBS_DIR, else ./jobs].")
@click.pass_context
def jobs_group(ctx, jobs_dir):
    """Batch jobs: TOML job files in a jobs folder, rendered on demand or on a schedule (jobs/README.md)."""
    from renderer.jobs import jobs_dir as default_jobs_dir

    ctx.obj = default_jobs_dir(jobs_dir)


@jobs_group.command("run")
@click.argument("job")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_ray_options
@click.pass_obj
def jobs_run(folder, job, quiet, ray_address, ray_engines):
    """Render every book of JOB (a job file, or a job's name in the jobs folder) that is not done,
    all in one engine run. A job file's own folder is its jobs folder."""
    from renderer.jobs import JobState, find_job, load_job, run_job

    try:
        path = find_job(job, folder)
        loaded = load_job(path)
        with JobState(path.parent) as state, _stop_on_sigterm():
            result = run_job(loaded, state, progress=not quiet, warn=lambda line: click.echo(f"warning: {line}", err=True),
                             cluster=ray_options(ray_address, ray_engines))
    except RendererError as err:
        raise _fail(err) from err
    except KeyboardInterrupt:
        click.echo(f"\nStopped. Every finished chunk is kept; run `render jobs run {job}` again to resume.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    for book, state_name, error in result.books:
        click.echo(f"{state_name:7} {book.path}" + (f": {error}" if error else f" -> {book.out}"))
    engines = len(result.render.engines) if result.render else 0
    click.echo(f"job {loaded.name}: {len(result.books) - len(result.failed)} book(s) done, {len(result.failed)} "
               f"failed; {engines} engine(s) started", err=True)
    if result.failed:
        raise click.ClickException(f"job {loaded.name}: {len(result.failed)} of {len(result.books)} book(s) failed "
                                   f"(render jobs status {loaded.name})")


@jobs_group.command("list")
@click.pass_obj
def jobs_list(folder):
    """Each job: its schedule, next run, and last run with its outcome."""
    from renderer.jobs import JobState, job_files, list_line, summarize

    try:
        job_files(folder)
        with JobState(folder) as state:
            lines = [list_line(summary) for summary in summarize(folder, state)]
    except RendererError as err:
        raise _fail(err) from err
    click.echo("\n".join(lines) if lines else f"no jobs in {folder}")


@jobs_group.command("status")
@click.argument("job", required=False)
@click.pass_obj
def jobs_status(folder, job):
    """Each job (or JOB) as `jobs list` shows it, then its books: pending, rendering, done, or failed with why."""
    from renderer.jobs import JobState, find_job, job_files, status_lines, summarize

    try:
        only = find_job(job, folder) if job else None
        folder = only.parent if only else folder
        job_files(folder)
        with JobState(folder) as state:
            lines = [line for summary in summarize(folder, state, only=only) for line in status_lines(summary, state)]
    except RendererError as err:
        raise _fail(err) from err
    click.echo("\n".join(lines) if lines else f"no jobs in {folder}")


@jobs_group.command("serve")
@click.option("--poll", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds between looks at the jobs folder (job files are re-read each time).")
@click.option("--until", type=click.FloatRange(0), help="Stop after this many seconds (a run in progress finishes).")
@click.option("--max-runs", type=click.IntRange(1), help="Stop after this many runs.")
@click.option("--progress", is_flag=True, help="Progress bars for each run.")
@_ray_options
@click.pass_obj
def jobs_serve(folder, poll, until, max_runs, progress, ray_address, ray_engines):
    """Run the jobs folder's scheduled jobs when due, one at a time, until stopped (Ctrl-C, SIGTERM)."""
    from renderer.jobs import ServeOptions, job_files, serve

    try:
        job_files(folder)
        with _stop_on_sigterm():
            click.echo(f"serving {folder} (Ctrl-C to stop)", err=True)
            options = ServeOptions(poll=poll, until=until, max_runs=max_runs, progress=progress,
                                   cluster=ray_options(ray_address, ray_engines))
            runs = serve(folder, options, say=lambda line: click.echo(line, err=True))
    except RendererError as err:
        raise _fail(err) from err
    except KeyboardInterrupt:
        click.echo("\nStopped serving; a run in progress was stopped and keeps its finished chunks.", err=True)
        return
    click.echo(f"served {runs} run(s)", err=True)
