"""User mistakes through the real CLI: one clear line each, a non-zero exit, never a traceback."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import BAD_EPUBS

from renderer.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0]


def test_missing_book(tmp_path):
    assert_one_line_error(run(tmp_path / "nope.epub"), "nope.epub")


def test_unknown_voice(tmp_path):
    book = tmp_path / "b.md"
    book.write_text("# B\n\nText.\n")
    assert_one_line_error(run(book, "--voice", "xx"), "unknown voice 'xx'")
    assert_one_line_error(run(book, "--voice", "en:bob"), "no speaker 'bob'", "andrew, katie")


def test_data_parallel_past_the_gpus_there_are_is_one_line(tmp_path, tiny_models):
    """Said before a codec or engine loads (here: a CPU, no GPU at all), and nothing is written."""
    book = tmp_path / "b.md"
    book.write_text("# B\n\nSome text to speak.\n")
    model, codec = tiny_models
    result = run(book, "--model", model, "--codec", codec, "--data-parallel", 2, "--quiet")
    assert_one_line_error(result, "--data-parallel 2: no GPU is visible here")
    assert not list((tmp_path / "b").glob("*.wav"))
    with_ray = run(book, "--model", model, "--codec", codec, "--data-parallel", 2, "--ray", "--quiet")
    assert_one_line_error(with_ray, "--data-parallel spreads engines over one host's GPUs without Ray")


def test_unreadable_model_path(tmp_path):
    book = tmp_path / "b.md"
    book.write_text("# B\n\nSome text to speak.\n")
    assert_one_line_error(run(book, "--model", tmp_path / "no-model"), "no such model folder")


@pytest.mark.skipif(not BAD_EPUBS.is_dir(), reason="../shared/fixtures is not beside this checkout")
def test_broken_epub(tmp_path):
    assert_one_line_error(run(BAD_EPUBS / "zero-byte.epub", "--out", tmp_path / "o"), "zero-byte.epub")
    assert_one_line_error(run(BAD_EPUBS / "ec-ocf-encryption-unknown-valid.epub"), "DRM-protected")


def test_voices_lists_languages_and_speakers():
    result = run("voices")
    assert result.exit_code == 0
    assert "nineninesix/kani-tts-400m-en" in result.output and "andrew, katie" in result.output
    assert len(result.output.splitlines()) == 6


def test_help_starts_without_the_engine():
    result = run("--help")
    assert result.exit_code == 0 and "render BOOK" in result.output
