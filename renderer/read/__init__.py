"""Book files in, Book out: the reader is chosen by the file's extension, or named."""
from __future__ import annotations

from pathlib import Path

from renderer.book import Book, BookError
from renderer.read.epub import read_epub
from renderer.read.markdown import read_markdown
from renderer.read.script import read_script

AUTO = "auto"  # the kind that the file's extension says
KINDS = {"epub": read_epub, "markdown": read_markdown, "script": read_script}
READERS = {
    ".epub": "epub",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "markdown",  # plain text is Markdown without markup: blank lines part paragraphs
    ".script": "script",
    ".play": "script",
}


def read_book(path: Path, all_matter: bool = False, kind: str = AUTO) -> Book:
    """Read an .epub, .md, .markdown, .txt, .script or .play file into a Book.

    all_matter: keep the front and back matter (cover, contents, copyright, index...) and the
    notes that the book marks as such; they are left out by default.
    kind: "epub", "markdown" or "script" reads the file as that whatever its extension; "auto"
    goes by the extension.

    Raises BookError, one line naming the file, for an unknown extension, a missing or
    unreadable file, or a file its reader cannot make sense of.
    """
    path = Path(path)
    reader = KINDS.get(READERS.get(path.suffix.lower(), "") if kind == AUTO else kind)
    if reader is None:
        if kind != AUTO:
            raise BookError(f"{path}: unknown input kind {kind!r} (expected {AUTO}, {', '.join(KINDS)})")
        known = ", ".join(READERS)
        raise BookError(f"{path}: unknown book format {path.suffix or '(no extension)'!r} "
                        f"(expected {known}, or name the kind with --input)")
    if not path.exists():
        raise BookError(f"{path}: no such file")
    if not path.is_file():
        raise BookError(f"{path}: not a file")
    try:
        return reader(path, all_matter=all_matter)
    except OSError as error:
        raise BookError(f"{path}: cannot read the file ({error.strerror or error})") from None
