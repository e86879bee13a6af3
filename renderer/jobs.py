"""Scheduled batch jobs: job files in a jobs folder, their state in SQLite, and a scheduler.

A job file (`JOBS/NAME.toml`, the job's name is the file's) says which books to render, how, and
when (a cron expression, or none: on demand). A run reads every input, renders all readable books
in one engine run (`render_books`: their chunks in the same batches), and records per book
pending / rendering / done / failed with the error line in `JOBS/.jobs.sqlite`. `serve` runs jobs
when due, one at a time; a job runs under an flock on `JOBS/.locks/NAME.lock`, so two schedulers on
one folder never run the same job at once. jobs/README.md documents the format and the policies.
"""
from __future__ import annotations

import glob
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Self

from renderer.book import RendererError
from renderer.speech.engine import EngineOptions

if TYPE_CHECKING:
    from renderer.cluster import RayOptions
    from renderer.render import BookRender, RunReport

JOBS_DIR = Path("jobs")  # the default jobs folder, in the working directory
JOBS_DIR_ENV = "RENDER_JOBS_DIR"  # or this variable, or --jobs-dir
JOB_SUFFIX = ".toml"
STATE_DB = ".jobs.sqlite"  # in the jobs folder
LOCKS_DIR = ".locks"  # in the jobs folder: one flock file per job
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another's SQLite transaction
POLL_SECONDS = 30.0  # serve: how often job files are re-read and due jobs looked for
ERROR_LINE_CHARS = 300  # an error line kept in the state, at most

# Outcomes of a run, and states of a book in a run.
RUNNING, DONE, FAILED, STOPPED, INTERRUPTED = "running", "done", "failed", "stopped", "interrupted"
PENDING, RENDERING = "pending", "rendering"
# Why a run started.
MANUAL, SCHEDULED, MISSED = "manual", "schedule", "missed"

# Keys a job file may have. A book key may also be set per input; engine keys sit under [engine].
BOOK_KEYS = ("voice", "format", "chapters", "lexicon", "cast", "directions", "kind", "all-matter")
JOB_KEYS = ("description", "schedule", "inputs", "out", "engine", *BOOK_KEYS)
INPUT_KEYS = ("path", *BOOK_KEYS)
ENGINE_KEYS = ("model", "codec", "quantize", "max-seqs", "gpu-memory", "engines", "data-parallel", "retries",
               "keep-runaways", "seed", "eager", "compile-codec")
MIN_GPU_MEMORY, MAX_GPU_MEMORY = 0.05, 0.99  # fraction of the GPU, as `render --gpu-memory` takes it


class JobError(RendererError):
    """A job file that cannot run: one line naming the file and the key."""


class JobBusy(RendererError):
    """The job is being run by another scheduler (or `jobs run`) now."""


@dataclass(frozen=True)
class JobBook:
    """One input of a job, resolved to a file, with the settings it renders with."""

    path: Path
    out: Path  # the book's own output folder: the job's out / the file's name without extension
    voice: str = "en"
    fmt: str = "wav"
    chapters: str | None = None
    lexicon: Path | None = None
    cast: Path | None = None
    directions: str = "skip"
    kind: str = "auto"
    all_matter: bool = False


@dataclass(frozen=True)
class Job:
    name: str  # the file's name without .toml
    path: Path
    schedule: str | None  # cron expression; None: on demand only
    books: tuple[JobBook, ...]
    engine: EngineOptions = field(default_factory=EngineOptions)
    model: str | None = None  # overrides every voice's, as render --model
    codec: str | None = None
    description: str = ""


# ---------------------------------------------------------------------------------------------
# Job files


def jobs_dir(option: Path | None = None) -> Path:
    """The jobs folder: --jobs-dir, else $RENDER_JOBS_DIR, else ./jobs."""
    return Path(option or os.environ.get(JOBS_DIR_ENV) or JOBS_DIR)


def job_files(folder: Path) -> list[Path]:
    """The job files of a folder, by name. Raises JobError if the folder is not there."""
    if not folder.is_dir():
        raise JobError(f"{folder}: no such jobs folder (set --jobs-dir or ${JOBS_DIR_ENV})")
    return sorted(p for p in folder.glob(f"*{JOB_SUFFIX}") if p.is_file())


def find_job(spec: str, folder: Path) -> Path:
    """A job named on the command line: a file path, or a job's name in the jobs folder."""
    path = Path(spec)
    if path.suffix == JOB_SUFFIX or path.is_file():
        if not path.is_file():
            raise JobError(f"{path}: no such job file")
        return path
    named = folder / f"{spec}{JOB_SUFFIX}"
    if not named.is_file():
        raise JobError(f"{spec}: no such job (no {named})")
    return named


def load_job(path: Path) -> Job:
    """Read and check a whole job file before anything runs: every key, the schedule, every input
    (a glob must match a file), every voice, format, lexicon and cast file.

    Raises JobError, one line naming the file and the key.
    """
    from renderer.read.plain import read_user_file
    from renderer.read.script import read_toml

    data, _ = read_toml(read_user_file(path, "job", JobError), path, 1, JobError)
    check = _Checker(path)
    check.keys(data, JOB_KEYS, "")
    engine_table = data.get("engine", {})
    if not isinstance(engine_table, dict):
        raise check.error("engine", "must be a table ([engine])")
    check.keys(engine_table, ENGINE_KEYS, "engine.")
    engine, model, codec = check.engine(engine_table)
    schedule = check.typed(data, "schedule", str, None)
    if schedule is not None:
        check_schedule(schedule, path)
    if "out" not in data:
        raise check.error("out", "missing: the folder the books are written into (one sub-folder each)")
    out = check.file_path(check.typed(data, "out", str))
    defaults = check.book_settings(data, "", model, codec)
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise check.error("inputs", "expected a list of paths or globs (or tables with a path)")
    books: dict[Path, JobBook] = {}  # a file matched by several inputs takes the last one's settings
    for number, entry in enumerate(inputs, start=1):
        where = f"inputs[{number}]"
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict):
            raise check.error(where, "expected a path or glob in quotes, or a table with a path")
        check.keys(entry, INPUT_KEYS, f"{where}.")
        pattern = check.typed(entry, "path", str, None, f"{where}.")
        if pattern is None:
            raise check.error(f"{where}.path", "missing")
        settings = {**defaults, **check.book_settings(entry, f"{where}.", model, codec)}
        for file in check.matches(pattern, where):
            books.pop(file, None)
            books[file] = JobBook(path=file, out=out / file.stem, **settings)
    by_out: dict[Path, Path] = {}
    for book in books.values():
        if book.out in by_out:
            raise check.error("inputs", f"{by_out[book.out].name} and {book.path.name} would both be written to "
                                        f"{book.out} (rename one)")
        by_out[book.out] = book.path
    return Job(name=path.stem, path=path, schedule=schedule, books=tuple(books.values()), engine=engine,
               model=model, codec=codec, description=check.typed(data, "description", str, ""))


def check_schedule(schedule: str, path: Path) -> None:
    """Raise JobError unless `schedule` is a cron expression croniter takes (5 fields, or 6 with seconds last)."""
    from croniter import croniter

    if not croniter.is_valid(schedule):
        raise JobError(f"{path}: schedule: {schedule!r} is not a cron expression (minute hour day month weekday, "
                       "like \"0 2 * * *\")")


class _Checker:
    """The checks of one job file; each failure is a JobError naming the file and the key."""

    def __init__(self, path: Path):
        self.path = path
        self.base = path.parent

    def error(self, key: str, problem: str) -> JobError:
        return JobError(f"{self.path}: {key}: {problem}")

    def keys(self, table: dict, allowed: tuple[str, ...], prefix: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.error(f"{prefix}{key}", f"unknown key (expected one of: {', '.join(allowed)})")

    def typed(self, table: dict, key: str, kind: type, default=None, prefix: str = ""):
        if key not in table:
            return default
        value = table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = {str: "a string in quotes", bool: "true or false", int: "a whole number", float: "a number"}
            raise self.error(f"{prefix}{key}", f"expected {names[kind]}, not {value!r}")
        return value

    def choice(self, table: dict, key: str, choices: tuple[str, ...], prefix: str) -> str | None:
        value = self.typed(table, key, str, None, prefix)
        if value is not None and value not in choices:
            raise self.error(f"{prefix}{key}", f"{value!r} is not one of {', '.join(choices)}")
        return value

    def file_path(self, written: str) -> Path:
        """A path as written in the job file: ~ expanded, relative to the job file's folder."""
        path = Path(written).expanduser()
        return Path(os.path.normpath(path if path.is_absolute() else self.base / path))

    def matches(self, pattern: str, where: str) -> list[Path]:
        full = self.file_path(pattern)
        if glob.has_magic(str(full)):
            found = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
            if not found:
                raise self.error(where, f"{pattern!r} matches no file")
            return found
        if not full.is_file():
            raise self.error(where, f"{full}: no such file")
        return [full]

    def book_settings(self, table: dict, prefix: str, model: str | None, codec: str | None) -> dict:
        """The book keys set in `table`, as JobBook fields, each checked."""
        from renderer.audio.export import FORMATS
        from renderer.cast import DIRECTIONS
        from renderer.read import AUTO, KINDS
        from renderer.speech.voices import resolve_voice
        from renderer.text.lexicon import read_lexicon

        settings: dict = {}
        if (voice := self.typed(table, "voice", str, None, prefix)) is not None:
            try:
                resolve_voice(voice, model, codec)
            except RendererError as err:
                raise self.error(f"{prefix}voice", str(err)) from None
            settings["voice"] = voice
        if (fmt := self.choice(table, "format", FORMATS, prefix)) is not None:
            settings["fmt"] = fmt
        if "chapters" in table:  # 3, or "3-5,9"; checked against the book when it is read
            kind = int if isinstance(table["chapters"], int) else str
            settings["chapters"] = str(self.typed(table, "chapters", kind, None, prefix))
        for key, what in (("lexicon", "lexicon"), ("cast", "cast")):
            if (written := self.typed(table, key, str, None, prefix)) is not None:
                path = self.file_path(written)
                if not path.is_file():
                    raise self.error(f"{prefix}{key}", f"{path}: no such {what} file")
                settings[key] = path
        if "lexicon" in settings:
            try:
                read_lexicon(settings["lexicon"])
            except RendererError as err:
                raise self.error(f"{prefix}lexicon", str(err)) from None
        if (directions := self.choice(table, "directions", DIRECTIONS, prefix)) is not None:
            settings["directions"] = directions
        if (kind := self.choice(table, "kind", (AUTO, *KINDS), prefix)) is not None:
            settings["kind"] = kind
        if (all_matter := self.typed(table, "all-matter", bool, None, prefix)) is not None:
            settings["all_matter"] = all_matter
        return settings

    def engine(self, table: dict) -> tuple[EngineOptions, str | None, str | None]:
        """[engine]: the options `render` takes for its engine, by the same names."""
        from renderer.speech.engine import check_model

        def whole(key: str, least: int | None = None) -> dict:
            value = self.typed(table, key, int, None, "engine.")
            if value is not None and least is not None and value < least:
                raise self.error(f"engine.{key}", f"must be {least} or more, not {value}")
            return {} if value is None else {key: value}

        values = {**whole("max-seqs", 1), **whole("engines", 0), **whole("data-parallel", 0),
                  **whole("retries", 0), **whole("seed")}
        if (memory := self.typed(table, "gpu-memory", float, None, "engine.")) is not None:
            if not MIN_GPU_MEMORY <= memory <= MAX_GPU_MEMORY:
                raise self.error("engine.gpu-memory", f"must be between {MIN_GPU_MEMORY} and {MAX_GPU_MEMORY}, "
                                                      f"not {memory}")
            values["gpu-memory"] = memory
        for key in ("quantize", "keep-runaways", "eager", "compile-codec"):
            if (flag := self.typed(table, key, bool, None, "engine.")) is not None:
                values[key] = flag
        model, codec = self.typed(table, "model", str, None, "engine."), self.typed(table, "codec", str, None, "engine.")
        if model is not None:
            model = str(self.file_path(model)) if model.startswith((".", "~", "/")) else model
            try:
                check_model(model)
            except RendererError as err:
                raise self.error("engine.model", str(err)) from None
        if codec is not None and codec.startswith((".", "~", "/")):
            codec = str(self.file_path(codec))
            if not Path(codec).is_file():
                raise self.error("engine.codec", f"{codec}: no such codec file")
        names = {"max-seqs": "max_num_seqs", "gpu-memory": "gpu_memory_utilization", "keep-runaways": "keep_runaways",
                 "eager": "enforce_eager", "engines": "replicas", "data-parallel": "data_parallel",
                 "compile-codec": "compile_codec"}
        return EngineOptions(**{names.get(k, k): v for k, v in values.items()}), model, codec


# ---------------------------------------------------------------------------------------------
# Schedule


def next_run(schedule: str, after: float) -> float:
    """The first time (Unix seconds) strictly after `after` that `schedule` fires, in local time."""
    from croniter import croniter

    return croniter(schedule, datetime.fromtimestamp(after).astimezone()).get_next(float)


def due(schedule: str | None, last: float | None, seen: float, now: float) -> str | None:
    """Whether a scheduled job should start at `now`: SCHEDULED if a slot came since its last run
    (or since it was first seen), MISSED if more than one did (a scheduler that was down), else None.
    However many slots were missed, the job runs once."""
    if schedule is None:
        return None
    slot = next_run(schedule, max(last or 0.0, seen))
    if slot > now:
        return None
    return MISSED if next_run(schedule, slot) <= now else SCHEDULED


# ---------------------------------------------------------------------------------------------
# State

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY,            -- the job file's name without .toml
    seen REAL NOT NULL                -- when a scheduler first saw it (Unix s): a new job's schedule starts here
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,            -- manual | schedule | missed
    started REAL NOT NULL,
    finished REAL,
    outcome TEXT NOT NULL,            -- running | done | failed | stopped | interrupted
    pid INTEGER NOT NULL,
    engines INTEGER NOT NULL DEFAULT 0,
    error TEXT                        -- one line: why the whole run failed (a bad job file, an engine)
);
CREATE INDEX IF NOT EXISTS runs_by_job ON runs (job, id);
CREATE TABLE IF NOT EXISTS books (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    input TEXT NOT NULL,              -- the book's file
    out TEXT NOT NULL,                -- its output folder
    state TEXT NOT NULL,              -- pending | rendering | done | failed | stopped
    error TEXT,                       -- one line: why it failed
    chunks INTEGER, rendered INTEGER, reused INTEGER, written INTEGER,
    updated REAL NOT NULL,
    PRIMARY KEY (run, input)
);
"""


@dataclass(frozen=True)
class Run:
    id: int
    job: str
    trigger: str
    started: float
    finished: float | None
    outcome: str
    pid: int
    engines: int
    error: str | None


@dataclass(frozen=True)
class BookState:
    input: str
    out: str
    state: str
    error: str | None
    chunks: int | None
    rendered: int | None
    reused: int | None
    written: int | None


class JobState:
    """The jobs folder's SQLite database (WAL: status reads while a run writes). One per thread."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            self.db = sqlite3.connect(folder / STATE_DB, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self.db:
                self.db.executescript(_SCHEMA)
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as err:
            raise JobError(f"{folder / STATE_DB}: cannot open the job state ({err})") from err

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, args: tuple = ()) -> int:
        with self.db:
            return self.db.execute(sql, args).lastrowid

    def seen(self, job: str, at: float | None = None) -> float:
        """When the job was first seen (recorded now, or at `at`, if it never was)."""
        self._write("INSERT OR IGNORE INTO jobs (name, seen) VALUES (?, ?)", (job, time.time() if at is None else at))
        return self.db.execute("SELECT seen FROM jobs WHERE name = ?", (job,)).fetchone()[0]

    def start_run(self, job: str, trigger: str, books: list[tuple[Path, Path]]) -> int:
        """A new run of `job` (its lock held), its books pending. Runs left `running` by a process
        that died are marked interrupted."""
        now = time.time()
        with self.db:
            self.db.execute("UPDATE runs SET outcome = ? WHERE job = ? AND outcome = ?", (INTERRUPTED, job, RUNNING))
            run = self.db.execute("INSERT INTO runs (job, trigger, started, outcome, pid) VALUES (?, ?, ?, ?, ?)",
                                  (job, trigger, now, RUNNING, os.getpid())).lastrowid
            self.db.executemany("INSERT INTO books (run, input, out, state, updated) VALUES (?, ?, ?, ?, ?)",
                                [(run, str(path), str(out), PENDING, now) for path, out in books])
        return run

    def book(self, run: int, path: Path, state: str, error: str | None = None, report=None) -> None:
        counts = (report.chunks, report.rendered, report.reused, len(report.written)) if report else (None,) * 4
        self._write("UPDATE books SET state = ?, error = ?, chunks = coalesce(?, chunks), rendered = coalesce(?, rendered), "
                    "reused = coalesce(?, reused), written = coalesce(?, written), updated = ? WHERE run = ? AND input = ?",
                    (state, _line(error), *counts, time.time(), run, str(path)))

    def finish_run(self, run: int, outcome: str, engines: int = 0, error: str | None = None) -> None:
        self._write("UPDATE runs SET outcome = ?, finished = ?, engines = ?, error = ? WHERE id = ?",
                    (outcome, time.time(), engines, _line(error), run))

    def last_run(self, job: str) -> Run | None:
        row = self.db.execute("SELECT * FROM runs WHERE job = ? ORDER BY id DESC LIMIT 1", (job,)).fetchone()
        return Run(*row) if row else None

    def books(self, run: int) -> list[BookState]:
        rows = self.db.execute("SELECT input, out, state, error, chunks, rendered, reused, written FROM books "
                               "WHERE run = ? ORDER BY rowid", (run,))
        return [BookState(*row) for row in rows]


def _line(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= ERROR_LINE_CHARS else text[: ERROR_LINE_CHARS - 1] + "…"


class JobLock:
    """One run of a job at a time, across processes: an flock on JOBS/.locks/NAME.lock (the kernel
    drops it when the process dies, so a crashed scheduler never leaves a job stuck)."""

    def __init__(self, folder: Path, job: str):
        self.path = folder / LOCKS_DIR / f"{job}.lock"
        self.job = job
        self.file = None

    def __enter__(self) -> Self:
        from renderer.store import take_flock

        self.file, holder = take_flock(self.path)
        if self.file is None:
            raise JobBusy(f"job {self.job}: already running (pid {holder}); one run of a job at a time")
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def held_elsewhere(self) -> bool:
        """Whether some process holds the lock now (a run left `running` is live, not interrupted)."""
        try:
            with self:
                return False
        except JobBusy:
            return True


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class JobResult:
    run: int
    books: list[tuple[JobBook, str, str | None]]  # book, state, error line
    render: RunReport | None = None  # what render_books reports: its engines, each book's report

    @property
    def failed(self) -> list[tuple[JobBook, str, str | None]]:
        return [entry for entry in self.books if entry[1] != DONE]


def run_job(job: Job, state: JobState, trigger: str = MANUAL, progress: bool = False,
            warn: Callable[[str], None] = lambda line: None, cluster: RayOptions | None = None) -> JobResult:
    """Render every book of `job` that is not done, all in one engine run, recording each book's
    state as it goes. A book that cannot be read, planned or written is failed with its line and
    the others go on; an engine that cannot start fails the books still rendering.

    Raises JobBusy if the job is running elsewhere; KeyboardInterrupt (Ctrl-C, SIGTERM) stops the
    run (recorded `stopped`; finished chunks are kept). `warn` gets each book's reading warnings.
    With `cluster`, the books render on Ray.
    """
    with JobLock(state.folder, job.name):
        return _run_locked(job, state, trigger, progress, warn, cluster)


def _run_locked(job: Job, state: JobState, trigger: str, progress: bool, warn: Callable[[str], None],
                cluster: RayOptions | None) -> JobResult:
    """run_job, its lock held."""
    from renderer.render import render_books

    run = state.start_run(job.name, trigger, [(b.path, b.out) for b in job.books])
    states: dict[Path, tuple[str, str | None]] = {b.path: (PENDING, None) for b in job.books}

    def mark(book: JobBook, new: str, error: str | None = None, report=None) -> None:
        states[book.path] = (new, _line(error))
        state.book(run, book.path, new, error, report)

    renders: list[tuple[JobBook, BookRender]] = []
    for book in job.books:
        try:
            renders.append((book, _book_render(job, book, progress, warn)))
        except RendererError as err:
            mark(book, FAILED, str(err))
    by_render = {id(render): book for book, render in renders}

    def finished(render: BookRender) -> None:
        report = render.report
        if report.failures:
            mark(by_render[id(render)], FAILED,
                 f"{len(report.failures)} chunk(s) failed, their chapters not written: {report.failures[0]}", report)
        else:
            mark(by_render[id(render)], DONE, None, report)

    for book, _ in renders:
        mark(book, RENDERING)
    try:
        result = render_books([render for _, render in renders], on_finished=finished, cluster=cluster)
    except RendererError as err:
        for book, _ in renders:
            if states[book.path][0] == RENDERING:
                mark(book, FAILED, str(err))
        state.finish_run(run, FAILED, 0, str(err))
        return JobResult(run, [(b, *states[b.path]) for b in job.books])
    except KeyboardInterrupt:
        for book, _ in renders:
            if states[book.path][0] == RENDERING:
                mark(book, STOPPED, "stopped before it was finished; finished chunks are kept")
        state.finish_run(run, STOPPED)
        raise
    for warning in result.warnings:
        warn(warning)
    for book, render in renders:
        if render.error is not None:
            mark(book, FAILED, str(render.error), render.report)
    outcome = DONE if all(s == DONE for s, _ in states.values()) else FAILED
    state.finish_run(run, outcome, len(result.engines))
    return JobResult(run, [(b, *states[b.path]) for b in job.books], result)


def _book_render(job: Job, book: JobBook, progress: bool, warn: Callable[[str], None]) -> BookRender:
    """Read one book as `render BOOK` would with these settings. Raises RendererError, one line."""
    from renderer.cast import load_cast
    from renderer.inspect import spoken_book
    from renderer.render import BookRender, RenderOptions
    from renderer.speech.voices import resolve_voice

    voice = resolve_voice(book.voice, job.model, job.codec)
    read = spoken_book(book.path, book.all_matter, book.lexicon, book.chapters, book.kind)
    cast = load_cast(read, voice, book.cast, book.directions, job.model, job.codec)
    for warning in read.warnings:
        warn(f"{book.path.name}: {warning}")
    return BookRender(read, RenderOptions(voice=voice, out=book.out, fmt=book.fmt, engine=job.engine,
                                          progress=progress), cast)


# ---------------------------------------------------------------------------------------------
# Listing and serving


@dataclass(frozen=True)
class JobSummary:
    """A job as `jobs list` shows it; `error` is set (and `job` None) for a file that does not validate."""

    name: str
    path: Path
    job: Job | None
    error: str | None
    next_run: float | None
    last: Run | None


def summarize(folder: Path, state: JobState, now: float | None = None, only: Path | None = None) -> list[JobSummary]:
    """Every job of the folder (or only the file `only`), read and checked, with its next and last run."""
    now = time.time() if now is None else now
    summaries = []
    for path in [only] if only is not None else job_files(folder):
        name = path.stem
        seen = state.seen(name)
        last = state.last_run(name)
        if last is not None and last.outcome == RUNNING and not JobLock(folder, name).held_elsewhere():
            last = Run(**{**last.__dict__, "outcome": INTERRUPTED})
        try:
            job = load_job(path)
        except RendererError as err:
            summaries.append(JobSummary(name, path, None, str(err), None, last))
            continue
        upcoming = None
        if job.schedule is not None:
            slot = next_run(job.schedule, max(last.started if last else 0.0, seen))
            upcoming = max(now, slot)  # overdue: at the scheduler's next look
        summaries.append(JobSummary(name, path, job, None, upcoming, last))
    return summaries


@dataclass(frozen=True)
class ServeOptions:
    poll: float = POLL_SECONDS  # seconds between looks at the jobs folder
    until: float | None = None  # stop taking new runs after this many seconds (a run in progress finishes)
    max_runs: int | None = None  # stop after this many runs
    progress: bool = False
    cluster: RayOptions | None = None  # each run on Ray


def serve(folder: Path, options: ServeOptions, say: Callable[[str], None]) -> int:
    """Run the folder's scheduled jobs when due, one at a time, until stopped (Ctrl-C, SIGTERM:
    KeyboardInterrupt) or `options.until` / `options.max_runs`. Job files are re-read at each look,
    so jobs can be added, edited or removed while it serves. Returns the number of runs.

    A job due while another scheduler runs it is skipped; a job file that stops validating is
    reported once per change and left alone; a failing book or run never stops the scheduler.
    """
    started = time.monotonic()
    runs = 0
    reported: dict[Path, float] = {}  # job file -> mtime of the version whose error was reported
    with JobState(folder) as state:
        while True:
            now = time.time()
            upcoming = [now + options.poll]
            if options.until is not None:
                upcoming.append(now + options.until - (time.monotonic() - started))
            for summary in summarize(folder, state, now):
                if summary.error is not None:
                    mtime = summary.path.stat().st_mtime if summary.path.exists() else 0.0
                    if reported.get(summary.path) != mtime:
                        say(f"warning: {summary.error} (not run until it is fixed)")
                        reported[summary.path] = mtime
                    continue
                job = summary.job
                trigger = due(job.schedule, summary.last.started if summary.last else None, state.seen(job.name), now)
                if trigger is None:
                    if summary.next_run is not None:
                        upcoming.append(summary.next_run)
                    continue
                try:
                    with JobLock(folder, job.name):
                        # Again under the lock: another scheduler may have run it since we looked.
                        last = state.last_run(job.name)
                        trigger = due(job.schedule, last.started if last else None, state.seen(job.name), time.time())
                        if trigger is None:
                            continue
                        say(f"{_clock()} job {job.name}: starting ({trigger})")
                        result = _run_locked(job, state, trigger, options.progress, lambda line: None, options.cluster)
                except JobBusy as err:
                    say(f"{_clock()} {err}: skipped")
                    continue
                runs += 1
                say(f"{_clock()} job {job.name}: {len(result.books) - len(result.failed)} book(s) done, "
                    f"{len(result.failed)} failed")
                if options.max_runs is not None and runs >= options.max_runs:
                    return runs
                upcoming.append(time.time())  # look again at once: others may have come due meanwhile
            if options.until is not None and time.monotonic() - started >= options.until:
                return runs
            time.sleep(max(min(upcoming) - time.time(), 0.0))


def _clock() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------------------------
# What `jobs list` and `jobs status` print


def _when(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S") if seconds is not None else "never"


def _last_line(summary: JobSummary) -> str:
    last = summary.last
    if last is None:
        return "last run never"
    engines = f", {last.engines} engine(s)" if last.engines else ""
    error = f": {last.error}" if last.error else ""
    return f"last run {_when(last.started)} ({last.trigger}): {last.outcome}{engines}{error}"


def list_line(summary: JobSummary) -> str:
    """`NAME: schedule "0 2 * * *", next run ...; last run ... (trigger): outcome`, or the file's error."""
    if summary.job is None:
        return f"{summary.name}: invalid: {summary.error}; {_last_line(summary)}"
    job = summary.job
    when = f'schedule "{job.schedule}", next run {_when(summary.next_run)}' if job.schedule else "on demand"
    return f"{summary.name}: {when}, {len(job.books)} book(s); {_last_line(summary)}"


def status_lines(summary: JobSummary, state: JobState) -> list[str]:
    """The job's list line, then one line per book of its last run (else of its file, pending):
    `  STATE  FILE -> OUT (counts)` or `  failed  FILE: error line`."""
    lines = [list_line(summary)]
    if summary.last is not None:
        books = state.books(summary.last.id)
    elif summary.job is not None:
        books = [BookState(str(b.path), str(b.out), PENDING, None, None, None, None, None) for b in summary.job.books]
    else:
        books = []
    for book in books:
        if book.error:
            detail = f": {book.error}"
        elif book.chunks is not None:
            detail = (f" -> {book.out} ({book.chunks} chunks: {book.rendered} rendered, {book.reused} reused; "
                      f"{book.written} file(s) written)")
        else:
            detail = f" -> {book.out}"
        lines.append(f"  {book.state:9} {book.input}{detail}")
    return lines
