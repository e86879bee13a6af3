"""`render inspect` and `--chapters`: the book as it will be spoken, through the real CLI, no model."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_read import BAD_EPUB_OUTCOMES, BAD_EPUB_REASONS, BAD_EPUBS

from renderer.book import BookError, Voice
from renderer.cli import main
from renderer.inspect import chapter_seconds, clock, inspect_book, select_chapters, summary_line
from renderer.read import read_book
from renderer.text.chunk import chunk_book

SAMPLES = Path(__file__).parents[1] / "samples"
MOBY_DICK = SAMPLES / "moby-dick-opening.md"
VOICE = Voice(language="en", speaker="andrew", model="tiny", codec="tiny.nemo")
HEAVY_MODULES = ("vllm", "nemo", "torch")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert all(needle in errors[0] for needle in needles), errors[0]


@pytest.fixture
def numbers_book(tmp_path) -> Path:
    path = tmp_path / "numbers.md"
    path.write_text("---\ntitle: Numbers\nauthor: Ann Author\n---\n\n## One\n\nIn 1851 he had 3 boats.\n\n"
                    "## Blank\n\n\\* \\* \\*\n\n## Two\n\nThe end.\n")
    return path


def test_inspect_json_matches_the_chunks(numbers_book):
    result = run("inspect", numbers_book, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["title", "author", "language", "words", "seconds", "chapters"]
    assert (data["title"], data["author"], data["language"]) == ("Numbers", "Ann Author", "en")
    assert [list(c) for c in data["chapters"]] == [["index", "title", "words", "chunks", "seconds"]] * 3
    # Words as written, before numbers become words: "In 1851 he had 3 boats." is six.
    assert [(c["index"], c["title"], c["words"], c["chunks"]) for c in data["chapters"]] == [
        (1, "One", 1 + 6, 2), (2, "Blank", 0, 0), (3, "Two", 1 + 2, 2)]
    assert data["words"] == 10
    chunks = chunk_book(read_book(numbers_book), VOICE)
    one = [c for c in chunks if c.chapter == 1]
    assert data["chapters"][0]["seconds"] == round(chapter_seconds(one), 1) > sum(c.seconds for c in one)
    assert data["seconds"] == pytest.approx(sum(c["seconds"] for c in data["chapters"]))
    assert result.stderr.splitlines() == ["2 chapters, 10 words; 1 thing skipped or left out (see the warnings)"]


def test_inspect_table_of_a_sample():
    result = run("inspect", MOBY_DICK)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    expected = inspect_book(read_book(MOBY_DICK), VOICE)
    assert lines[0] == "Moby-Dick; or, The Whale by Herman Melville (en)"
    assert lines[1].split() == ["#", "words", "chunks", "time", "title"]
    assert len(lines) == 2 + 3 + 1
    for line, chapter in zip(lines[2:5], expected["chapters"], strict=True):
        assert line.split()[:4] == [str(chapter["index"]), f"{chapter['words']:,}", str(chapter["chunks"]),
                                    clock(chapter["seconds"])]
        assert line.endswith(chapter["title"])
    assert lines[-1].split()[0] == f"{expected['words']:,}" and lines[-1].endswith("in all")
    assert result.stderr == f"3 chapters, {expected['words']:,} words; nothing skipped\n"


def test_inspect_text_prints_what_the_model_reads(numbers_book):
    result = run("inspect", numbers_book, "--text", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["One", "In eighteen fifty-one he had three boats."]
    both = run("inspect", numbers_book, "--text", "1,3")
    assert both.stdout.splitlines()[-2:] == ["Two", "The end."]


def test_inspect_lexicon_and_all_matter(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("Tyger = Tiger\n")
    result = run("inspect", SAMPLES / "blake-poems.epub", "--text", "2", "--lexicon", lexicon)
    first_stanza = "Tiger Tiger, burning bright, In the forests of the night; What immortal hand or eye, Could frame"
    assert result.stdout.splitlines()[:2] == ["The Tiger", f"{first_stanza} thy fearful symmetry?"]
    assert "left out front and back matter (title-page, rearnotes)" in result.stderr

    plain = json.loads(run("inspect", SAMPLES / "blake-poems.epub", "--json").stdout)
    everything = run("inspect", SAMPLES / "blake-poems.epub", "--json", "--all-matter")
    assert len(plain["chapters"]) == 3 and len(json.loads(everything.stdout)["chapters"]) == 4
    assert "warning" not in everything.stderr and "nothing skipped" in everything.stderr


def test_inspect_user_mistakes_are_one_line(tmp_path, numbers_book):
    assert_one_line_error(run("inspect", tmp_path / "nope.epub"), "nope.epub", "no such file")
    assert_one_line_error(run("inspect", numbers_book, "--text", "9"), "has no chapter 9", "(it has 1-3)")
    assert_one_line_error(run("inspect", numbers_book, "--voice", "xx"), "unknown voice 'xx'")
    assert_one_line_error(run("inspect", numbers_book, "--lexicon", tmp_path / "none.txt"), "no such lexicon file")


def test_render_chapters_and_lexicon_mistakes_are_one_line_before_any_model(tmp_path, numbers_book):
    out = tmp_path / "out"
    assert_one_line_error(run(numbers_book, "--chapters", "2-x", "--out", out), "chapters '2-x'")
    assert_one_line_error(run(numbers_book, "--chapters", "3-1", "--out", out), "runs backwards")
    assert_one_line_error(run(numbers_book, "--chapters", "4", "--out", out), "has no chapter 4")
    assert_one_line_error(run(numbers_book, "--lexicon", tmp_path / "none.txt", "--out", out), "no such lexicon")
    assert not out.exists()  # refused before anything was made


def test_select_chapters(numbers_book):
    book = read_book(numbers_book)
    for spec, chosen in [("1", [1]), ("3,1", [1, 3]), ("2-", [2, 3]), (" 1 - 2 , 2 ", [1, 2]), ("1-3", [1, 2, 3])]:
        selected = select_chapters(book, spec)
        assert [c.index for c in selected.chapters] == chosen, spec  # numbers kept: files keep their names
        assert (selected.title, selected.warnings) == (book.title, book.warnings)
    for spec, problem in [("", "expected chapter numbers"), ("one", "expected chapter numbers"),
                          ("1;2", "expected chapter numbers"), ("0", "has no chapter 0"),
                          ("2-9", "has no chapter 9")]:
        with pytest.raises(BookError, match=problem) as error:
            select_chapters(book, spec)
        assert "\n" not in str(error.value)


def test_summary_line():
    assert summary_line(1, 1, 0) == "1 chapter, 1 words; nothing skipped"
    assert summary_line(12, 12345, 2) == "12 chapters, 12,345 words; 2 things skipped or left out (see the warnings)"
    assert [clock(s) for s in (5, 65.4, 3725)] == ["0:05", "1:05", "1:02:05"]


def test_inspect_loads_no_model_stack():
    code = ("import sys; from renderer.cli import main; "
            f"main(['inspect', {str(MOBY_DICK)!r}, '--json'], standalone_mode=False); "
            f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "[]"
    assert json.loads("\n".join(done.stdout.splitlines()[:-1]))["title"] == "Moby-Dick; or, The Whale"


@pytest.mark.skipif(not BAD_EPUBS.is_dir(), reason="../shared/fixtures is not beside this checkout")
@pytest.mark.parametrize("name", sorted(BAD_EPUB_OUTCOMES))
def test_inspect_bad_epubs_read_or_fail_in_one_line(name):
    result = run("inspect", BAD_EPUBS / name)
    if BAD_EPUB_OUTCOMES[name] == "reject":
        assert_one_line_error(result, name, BAD_EPUB_REASONS[name])
    else:
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines()[-1].startswith("1 chapter, ")
