"""Build the sample EPUBs:

- two-chapters.epub (ebooklib): an EPUB 3 with a nav document, an NCX, a cover page with nothing to
  read, and two short chapters whose markup exercises the EPUB reader (inline markup, a footnote
  reference and its note, a script, a numbered <sup>).
- moby-dick-epub2.epub (by hand: ebooklib writes only EPUB 3): the chapters of
  moby-dick-opening.md as an EPUB 2 with an NCX, and a guide that marks its cover, title page,
  copyright page and contents page, which the reader leaves out.
- blake-poems.epub (ebooklib): three of Blake's Songs in one file, a nav entry pointing into it for
  each (three chapters), verse lines parted by <br/>, a drop cap and small caps, a note reference
  into an endnotes page, and landmarks naming the title page, contents and endnotes.

Run: python samples/make_epub.py [OUT.epub]   (no argument: all three, beside this script)
"""
from __future__ import annotations

import base64
import html
import re
import sys
import zipfile
from pathlib import Path

from ebooklib import epub

OUT = Path(__file__).with_name("two-chapters.epub")
EPUB2_OUT = Path(__file__).with_name("moby-dick-epub2.epub")
POEMS_OUT = Path(__file__).with_name("blake-poems.epub")
MOBY_DICK = Path(__file__).with_name("moby-dick-opening.md")
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


def _new_book(identifier: str, title: str, author: str) -> epub.EpubBook:
    """An empty English ebooklib book with its metadata."""
    book = epub.EpubBook()
    book.set_identifier(identifier)
    book.set_title(title)
    book.set_language("en")
    book.add_author(author)
    return book


def build(out: Path = OUT) -> Path:
    """Write the sample EPUB to `out` and return its path."""
    book = _new_book("urn:uuid:6f1d8a5e-renderer-sample-two-chapters", "The Lighthouse Keeper",
                     "Renderer Samples")
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


EPUB2_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
EPUB2_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title></head><body>
{body}
</body></html>"""
EPUB2_OPF = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
    <dc:identifier id="id">urn:uuid:renderer-sample-moby-dick-epub2</dc:identifier>
    <dc:title>Moby-Dick; or, The Whale</dc:title>
    <dc:creator opf:role="aut">Herman Melville</dc:creator>
    <dc:language>en</dc:language>
  </metadata>
  <manifest>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
{items}
  </manifest>
  <spine toc="ncx">
{itemrefs}
  </spine>
  <guide>
{references}
  </guide>
</package>"""
EPUB2_NCX = """<?xml version="1.0" encoding="UTF-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">
  <head><meta name="dtb:uid" content="urn:uuid:renderer-sample-moby-dick-epub2"/></head>
  <docTitle><text>Moby-Dick; or, The Whale</text></docTitle>
  <navMap>
{points}
  </navMap>
</ncx>"""


def _markdown_chapters(path: Path) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of each `## ` chapter of a Markdown sample, paragraphs as one line."""
    chapters = []
    for section in re.split(r"^## ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        paragraphs = [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]
        chapters.append((title.strip(), paragraphs))
    return chapters


def build_epub2(out: Path = EPUB2_OUT) -> Path:
    """Write the EPUB 2 sample (Moby-Dick's opening chapters) to `out` and return its path."""
    chapters = _markdown_chapters(MOBY_DICK)
    pages = {
        "cover.xhtml": ("Cover", '<div><img src="cover.png" alt="Moby-Dick"/></div>'),
        "title.xhtml": ("Title page", "<h1>Moby-Dick; or, The Whale</h1><p>by Herman Melville</p>"),
        "copyright.xhtml": ("Copyright", "<p>First published 1851; in the public domain.</p>"),
        "contents.xhtml": ("Contents", "<h2>Contents</h2>" + "".join(
            f'<p><a href="chapter-{n}.xhtml">{html.escape(t)}</a></p>'
            for n, (t, _) in enumerate(chapters, start=1))),
    }
    for n, (title, paragraphs) in enumerate(chapters, start=1):
        pages[f"chapter-{n}.xhtml"] = (title, f"<h2>{html.escape(title)}</h2>" + "".join(
            f"<p>{html.escape(p)}</p>" for p in paragraphs))
    ids = {name: f"p{n}" for n, name in enumerate(pages)}
    guide = [("cover", "cover.xhtml"), ("title-page", "title.xhtml"),
             ("copyright-page", "copyright.xhtml"), ("toc", "contents.xhtml"),
             ("text", "chapter-1.xhtml")]
    opf = EPUB2_OPF.format(
        items="\n".join(f'    <item id="{ids[name]}" href="{name}" media-type="application/xhtml+xml"/>'
                        for name in pages)
        + '\n    <item id="cover-image" href="cover.png" media-type="image/png"/>',
        itemrefs="\n".join(f'    <itemref idref="{ids[name]}"/>' for name in pages),
        references="\n".join(f'    <reference type="{kind}" title="{kind}" href="{href}"/>'
                             for kind, href in guide))
    ncx = EPUB2_NCX.format(points="\n".join(
        f'    <navPoint id="n{n}" playOrder="{n}"><navLabel><text>{html.escape(title)}</text>'
        f'</navLabel><content src="chapter-{n}.xhtml"/></navPoint>'
        for n, (title, _) in enumerate(chapters, start=1)))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", EPUB2_CONTAINER)
        archive.writestr("OEBPS/content.opf", opf)
        archive.writestr("OEBPS/toc.ncx", ncx)
        archive.writestr("OEBPS/cover.png", COVER_PNG)
        for name, (title, body) in pages.items():
            archive.writestr(f"OEBPS/{name}", EPUB2_PAGE.format(title=html.escape(title), body=body))
    return out


# Blake, Songs of Innocence and of Experience (1789/1794), public domain; spelling as Blake's.
# Stanzas are parted by blank lines; the Tyger's first line carries a drop cap, small caps and a
# note reference, written as the book's XHTML has them.
POEMS = {
    "lamb": ("The Lamb", """
Little Lamb who made thee
Dost thou know who made thee
Gave thee life &amp; bid thee feed.
By the stream &amp; o'er the mead;
Gave thee clothing of delight,
Softest clothing wooly bright;
Gave thee such a tender voice,
Making all the vales rejoice!
Little Lamb who made thee
Dost thou know who made thee

Little Lamb I'll tell thee,
Little Lamb I'll tell thee!
He is called by thy name,
For he calls himself a Lamb:
He is meek &amp; he is mild,
He became a little child:
I a child &amp; thou a lamb,
We are called by his name.
Little Lamb God bless thee.
Little Lamb God bless thee.
"""),
    "tyger": ("The Tyger", """
<span class="dropcap">T</span><span class="smallcaps">YGER</span> Tyger, burning bright,\
<a epub:type="noteref" href="notes.xhtml#note-1">1</a>
In the forests of the night;
What immortal hand or eye,
Could frame thy fearful symmetry?

In what distant deeps or skies.
Burnt the fire of thine eyes?
On what wings dare he aspire?
What the hand, dare seize the fire?

And what shoulder, &amp; what art,
Could twist the sinews of thy heart?
And when thy heart began to beat,
What dread hand? &amp; what dread feet?

What the hammer? what the chain,
In what furnace was thy brain?
What the anvil? what dread grasp,
Dare its deadly terrors clasp!

When the stars threw down their spears
And water'd heaven with their tears:
Did he smile his work to see?
Did he who made the Lamb make thee?

Tyger Tyger burning bright,
In the forests of the night:
What immortal hand or eye,
Dare frame thy fearful symmetry?
"""),
    "rose": ("The Sick Rose", """
O Rose thou art sick.
The invisible worm,
That flies in the night
In the howling storm:

Has found out thy bed
Of crimson joy:
And his dark secret love
Does thy life destroy.
"""),
}


def _stanzas(poem: str) -> list[str]:
    """A poem's stanzas as XHTML, lines parted by <br/>."""
    return ["<br/>".join(stanza.splitlines()) for stanza in poem.strip().split("\n\n")]


def build_poems(out: Path = POEMS_OUT) -> Path:
    """Write the poetry sample (three poems in one file, a nav entry into it for each) to `out`."""
    book = _new_book("urn:uuid:renderer-sample-blake-poems",
                     "Songs of Innocence and of Experience (a selection)", "William Blake")
    title_page = epub.EpubHtml(title="Title page", file_name="title.xhtml", lang="en")
    title_page.content = ('<section epub:type="titlepage"><h1>Songs of Innocence and of '
                          "Experience</h1><p>William Blake</p></section>")
    poems = epub.EpubHtml(title="Poems", file_name="poems.xhtml", lang="en")
    poems.content = "".join(
        f'<section id="{key}" epub:type="z3998:poem"><h2>{title}</h2>'
        + "".join(f'<p epub:type="z3998:verse">{stanza}</p>' for stanza in _stanzas(poem))
        + "</section>"
        for key, (title, poem) in POEMS.items())
    notes = epub.EpubHtml(title="Notes", file_name="notes.xhtml", lang="en")
    notes.content = ('<section epub:type="endnotes"><h2>Notes</h2><ol><li id="note-1" '
                     'epub:type="endnote"><p>Blake\'s own spelling of "tiger".</p></li></ol></section>')
    for item in (title_page, poems, notes):
        book.add_item(item)
    book.toc = tuple(epub.Link(f"poems.xhtml#{key}", title, key) for key, (title, _) in POEMS.items())
    book.guide = [{"type": "title-page", "href": "title.xhtml", "title": "Title page"},
                  {"type": "toc", "href": "nav.xhtml", "title": "Contents"},
                  {"type": "notes", "href": "notes.xhtml", "title": "Notes"}]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [title_page, "nav", poems, notes]
    epub.write_epub(str(out), book)
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        print(build(Path(sys.argv[1])))
    else:
        for builder in (build, build_epub2, build_poems):
            print(builder())
