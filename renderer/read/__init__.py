"""Book files in, Book out: the reader is chosen by the file's extension."""
from __future__ import annotations

from pathlib import Path

from renderer.book import Book, BookError
from renderer.read.epub import read_epub
from renderer.read.markdown import read_markdown

READERS = {
    ".epub": read_epub,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_markdown,  # plain text is Markdown without markup: blank lines part paragraphs
}


def read_book(path: Path, all_matter: bool = False) -> Book:
    """Read an .epub, .md, .markdown or .txt file into a Book.

    all_matter: keep the front and back matter (cover, contents, copyright, index...) and the
    notes that the book marks as such; they are left out by default.

    Raises BookError, one line naming the file, for an unknown extension, a missing or
    unreadable file, or a file its reader cannot make sense of.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(READERS)
        raise BookError(f"{path}: unknown book format {path.suffix or '(no extension)'!r} "
                        f"(expected {known})")
    if not path.exists():
        raise BookError(f"{path}: no such file")
    if not path.is_file():
        raise BookError(f"{path}: not a file")
    try:
        return reader(path, all_matter=all_matter)
    except OSError as error:
        raise BookError(f"{path}: cannot read the file ({error.strerror or error})") from None
