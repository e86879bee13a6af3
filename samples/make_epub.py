"""Build samples/two-chapters.epub with ebooklib: an EPUB 3 with a nav document, an NCX, a cover
page with nothing to read, and two short chapters whose markup exercises the EPUB reader
(inline markup, a footnote reference and its note, a script, a numbered <sup>).

Run: python samples/make_epub.py [OUT.epub]
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path

from ebooklib import epub

OUT = Path(__file__).with_name("two-chapters.epub")
# A 1x1 grey PNG: the cover picture, which the reader must not try to read.
COVER_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg=="
)

COVER_PAGE = '<div class="cover"><img src="cover.png" alt="The Lighthouse Keeper"/></div>'
CHAPTER_ONE = """
<h1>Chapter One: The Storm</h1>
<p>On the night of March 3rd, 1887, the wind rose over the harbor and did not stop.
Old Tom climbed the 112 steps of the lighthouse with a lamp in one hand and a <em>tin of
oil</em> in the other.<a epub:type="noteref" href="#n1">1</a></p>
<p>The glass rattled in its frame, and the rain came sideways. Down below, the sea threw itself
against the rocks, again and again, as if it had waited all year for this one night.<sup>2</sup></p>
<script>document.title = "not part of the story";</script>
<aside epub:type="footnote" id="n1"><p>Whale oil, in those days.</p></aside>
"""
CHAPTER_TWO = """
<h1>Chapter Two: The Morning</h1>
<p>By dawn the storm had passed. Tom counted the boats as they came home: <span>one</span>,
<span>two</span>, <span>three</span>, and then, at last, a <strong>fourth</strong>.</p>
<div>His daughter ran up the path with bread and a letter.<br/>"They say you saved them all,"
she said.</div>
"""


def build(out: Path = OUT) -> Path:
    """Write the sample EPUB to `out` and return its path."""
    book = epub.EpubBook()
    book.set_identifier("urn:uuid:6f1d8a5e-renderer-sample-two-chapters")
    book.set_title("The Lighthouse Keeper")
    book.set_language("en")
    book.add_author("Renderer Samples")
    book.set_cover("cover.png", COVER_PNG, create_page=False)

    cover = epub.EpubHtml(title="Cover", file_name="cover.xhtml", lang="en")
    cover.content = COVER_PAGE
    one = epub.EpubHtml(title="Chapter One: The Storm", file_name="chapter-1.xhtml", lang="en")
    one.content = CHAPTER_ONE
    two = epub.EpubHtml(title="Chapter Two: The Morning", file_name="chapter-2.xhtml", lang="en")
    two.content = CHAPTER_TWO
    for item in (cover, one, two):
        book.add_item(item)

    book.toc = (epub.Link("chapter-1.xhtml", "Chapter One: The Storm", "storm"),
                epub.Link("chapter-2.xhtml", "Chapter Two: The Morning", "morning"))
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [cover, "nav", one, two]
    epub.write_epub(str(out), book)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
