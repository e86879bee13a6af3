"""Tests for the readers: Markdown and EPUB in, Book out; every broken file a one-line BookError."""
from __future__ import annotations

import json
import struct
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from renderer.book import BookError
from renderer.read import epub as epub_reader
from renderer.read import read_book
from renderer.read.epub import MAX_ENTRY_BYTES, MIB

SAMPLES = Path(__file__).parents[1] / "samples"
BAD_EPUBS = Path(__file__).parents[2] / "shared" / "fixtures" / "bad-epub"

# What each broken EPUB must give, after BAD.md; where it allows either, the lenient reading.
BAD_EPUB_OUTCOMES = {
    "ec-composite-opf-malformed.epub": "reject",
    "ec-composite-spine-empty.epub": "reject",
    "ec-composite-xhtml-undefined-entity.epub": "reject",  # HTML fallback finds no real text
    "ec-ocf-container-content-model-error.epub": "readable",
    "ec-ocf-container-not-ocf-error.epub": "reject",
    "ec-ocf-encryption-unknown-valid.epub": "reject",  # DRM
    "ec-ocf-filename-duplicate-zip-entry-error.epub": "readable",
    "ec-ocf-filename-not-utf8-error.epub": "readable",
    "ec-ocf-metainf-container-file-missing-fatal.epub": "reject",
    "ec-ocf-metainf-container-rootfile-full-path-missing-error.epub": "reject",
    "ec-ocf-mimetype-file-incorrect-value-error.epub": "readable",
    "ec-ocf-mimetype-file-missing-error.epub": "readable",
    "ec-ocf-obfuscation-valid.epub": "readable",  # font obfuscation is not DRM
    "ec-ocf-package-document-missing-fatal.epub": "reject",
    "ec-ocf-zip-unreadable-image-with-epub-extension-fatal.epub": "reject",
    "ec-ocf-zip-unreadable-no-end-header-fatal.epub": "reject",
    "ec-opf-spine-missing-error.epub": "readable",  # falls back to manifest order
    "ec-package-manifest-item-missing-error.epub": "readable",
    "png-renamed.epub": "reject",
    "zero-byte.epub": "reject",
}
# The plain words each rejection must use.
BAD_EPUB_REASONS = {
    "ec-composite-opf-malformed.epub": "not well-formed",
    "ec-composite-spine-empty.epub": "spine is empty",
    "ec-composite-xhtml-undefined-entity.epub": "no readable text",
    "ec-ocf-container-not-ocf-error.epub": "no META-INF/container.xml",
    "ec-ocf-encryption-unknown-valid.epub": "DRM-protected",
    "ec-ocf-metainf-container-file-missing-fatal.epub": "no META-INF/container.xml",
    "ec-ocf-metainf-container-rootfile-full-path-missing-error.epub": "names no package document",
    "ec-ocf-package-document-missing-fatal.epub": "package document EPUB/package.opf is missing",
    "ec-ocf-zip-unreadable-image-with-epub-extension-fatal.epub": "not a ZIP archive",
    "ec-ocf-zip-unreadable-no-end-header-fatal.epub": "not a ZIP archive",
    "png-renamed.epub": "not a ZIP archive",
    "zero-byte.epub": "empty",
}

CONTAINER_XML = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf"
    media-type="application/oebps-package+xml"/></rootfiles>
</container>"""
XHTML = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>t</title><style>p {{ color: red }}</style></head><body>{body}</body></html>"""


def write_epub(path: Path, documents: dict[str, str], *, nav: str | None = None,
               landmarks: str = "", ncx: str | None = None, guide: str = "",
               spine: list[str] | None = None, extra_items: str = "",
               extra_files: dict[str, str | bytes] | None = None, title: str = "Test Book") -> Path:
    """A small EPUB: `documents` maps file names under OEBPS/ to XHTML, spine in that order.

    nav, landmarks: the <li> entries of the nav document's lists; ncx: its <navPoint>s;
    guide: the EPUB 2 guide's <reference>s.
    """
    items = [f'<item id="d{i}" href="{name}" media-type="application/xhtml+xml"/>'
             for i, name in enumerate(documents)]
    files = {f"OEBPS/{name}": text for name, text in documents.items()}
    if nav is not None:
        items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
                     'properties="nav"/>')
        landmarks_nav = f'<nav epub:type="landmarks"><ol>{landmarks}</ol></nav>' if landmarks else ""
        files["OEBPS/nav.xhtml"] = XHTML.format(
            body=f'<nav epub:type="toc"><ol>{nav}</ol></nav>{landmarks_nav}')
    if ncx is not None:
        items.append('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>')
        files["OEBPS/toc.ncx"] = (
            '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
            f"<navMap>{ncx}</navMap></ncx>")
    refs = spine if spine is not None else [f"d{i}" for i in range(len(documents))]
    opf = f"""<?xml version="1.0"?>
<package xmlns="http://www.idpf.org/2007/opf" xmlns:opf="http://www.idpf.org/2007/opf"
  version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">x</dc:identifier><dc:title>{title}</dc:title>
    <dc:creator>Ann Author</dc:creator><dc:creator opf:role="aut">Bob Writer</dc:creator>
    <dc:creator opf:role="ill">Ivy Illustrator</dc:creator>
    <dc:language>en-GB</dc:language>
  </metadata>
  <manifest>{"".join(items)}{extra_items}</manifest>
  <spine{' toc="ncx"' if ncx is not None else ''}>
    {"".join(f'<itemref idref="{r}"/>' for r in refs)}</spine>
  {f"<guide>{guide}</guide>" if guide else ""}
</package>"""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", "application/epub+zip")
        archive.writestr("META-INF/container.xml", CONTAINER_XML)
        archive.writestr("OEBPS/content.opf", opf)
        for name, data in {**files, **(extra_files or {})}.items():
            archive.writestr(name, data)
    return path


def texts(chapter) -> list[str]:
    return [p.text for p in chapter.paragraphs]


def outline(book) -> list[tuple[str, list[str]]]:
    """(title, paragraph texts) of each chapter."""
    return [(c.title, texts(c)) for c in book.chapters]


# dispatch ------------------------------------------------------------------------------------

def test_unknown_extension_missing_file_and_directory(tmp_path):
    (tmp_path / "book.pdf").write_bytes(b"%PDF-1.4")
    for path, problem in [(tmp_path / "book.pdf", "unknown book format"),
                          (tmp_path / "nowhere.epub", "no such file"),
                          (tmp_path / "nowhere.md", "no such file")]:
        with pytest.raises(BookError, match=problem) as error:
            read_book(path)
        assert str(path) in str(error.value) and "\n" not in str(error.value)
    folder = tmp_path / "folder.epub"
    folder.mkdir()
    with pytest.raises(BookError, match="not a file"):
        read_book(folder)


# Markdown ------------------------------------------------------------------------------------

def test_markdown_two_chapter_sample():
    book = read_book(SAMPLES / "two-chapters.md")
    assert (book.title, book.author, book.language) == ("The Lighthouse Keeper", "", "")
    assert [c.title for c in book.chapters] == [
        "Chapter One: The Storm", "Chapter Two: The Morning"]
    assert [c.index for c in book.chapters] == [1, 2]
    assert [len(c.paragraphs) for c in book.chapters] == [3, 3]
    first = book.chapters[0].paragraphs[0].text
    assert first.startswith("On the night of March 3rd, 1887,")
    assert "a tin of oil in the other." in first and "*" not in first


def test_markdown_moby_dick_sample_front_matter():
    book = read_book(SAMPLES / "moby-dick-opening.md")
    assert (book.title, book.author, book.language) == (
        "Moby-Dick; or, The Whale", "Herman Melville", "en")
    assert [c.title for c in book.chapters] == [
        "CHAPTER 1. Loomings.", "CHAPTER 2. The Carpet-Bag.", "CHAPTER 3. The Spouter-Inn."]
    assert book.chapters[0].paragraphs[0].text.startswith("Call me Ishmael. Some years ago—never")
    assert not any("Gutenberg" in p.text for c in book.chapters for p in c.paragraphs)


def test_markdown_blocks_and_inline_markup(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(
        "# Only Chapter\n\nSee [the map](http://x.org) and `the code`, ![a picture](p.png) "
        "<b>bold</b>\nnext line.\n\n- first item\n- second item\n\n> a quoted line\n\n"
        "```python\nprint('skipped')\n```\n\n    indented code\n\n### A subheading\n\nMore.\n")
    book = read_book(path)
    assert book.title == "Only Chapter"
    (only,) = book.chapters
    assert only.title == "Only Chapter"
    assert texts(only) == ["See the map and the code, bold next line.", "first item",
                           "second item", "a quoted line", "A subheading", "More."]


def test_markdown_chapter_level_is_the_top_level_with_text(tmp_path):
    path = tmp_path / "parts.md"
    path.write_text("# Part One\n\n## First\n\nOne.\n\n## Second\n\nTwo.\n\n"
                    "# Part Two\n\n## Third\n\nThree.\n")
    book = read_book(path)
    assert book.title == "Part One"
    assert outline(book) == [
        ("First", ["One."]), ("Second", ["Two."]), ("Third", ["Three."])]

    # The title has text right under it: H1 is the chapter level, the H2 is read as text.
    path.write_text("# Book\n\nA preface.\n\n## Start\n\nBegun.\n")
    assert outline(read_book(path)) == [
        ("Book", ["A preface.", "Start", "Begun."])]

    # Text before the first chapter is a chapter named after the book (here: the file).
    path.write_text("Before any heading.\n\n## One\n\nText.\n")
    assert outline(read_book(path)) == [
        ("parts", ["Before any heading."]), ("One", ["Text."])]


def test_markdown_plain_text_is_one_chapter_named_after_the_file(tmp_path):
    path = tmp_path / "plain-story.txt"
    path.write_text("---\n\nNot front matter.\n\n---\n\nSecond paragraph\nsame paragraph.\n\n"
                    "    An indented paragraph, not code.\n")
    book = read_book(path)
    assert (book.title, outline(book)) == ("plain-story", [
        ("plain-story", ["Not front matter.", "Second paragraph same paragraph.",
                         "An indented paragraph, not code."])])


@pytest.mark.parametrize("content, problem", [
    (b"", "no readable text"),
    (b"```\nonly code\n```\n", "no readable text"),
    (b"caf\xe9 au lait", "not UTF-8"),
])
def test_markdown_unreadable(tmp_path, content, problem):
    path = tmp_path / "bad.md"
    path.write_bytes(content)
    with pytest.raises(BookError, match=problem) as error:
        read_book(path)
    assert str(path) in str(error.value)


# EPUB ----------------------------------------------------------------------------------------

def test_epub_sample():
    book = read_book(SAMPLES / "two-chapters.epub")
    assert (book.title, book.author, book.language) == (
        "The Lighthouse Keeper", "Renderer Samples", "en")
    assert book.warnings == ("left out 1 note; --all-matter reads them",)
    # The cover page has no text and the nav document is not read: two chapters, from the nav.
    assert [(c.index, c.title) for c in book.chapters] == [
        (1, "Chapter One: The Storm"), (2, "Chapter Two: The Morning")]
    one, two = book.chapters
    assert texts(one)[0] == (
        "On the night of March 3rd, 1887, the wind rose over the harbor and did not stop. Old Tom "
        "climbed the 112 steps of the lighthouse with a lamp in one hand and a tin of oil in the "
        "other.")  # no footnote marker "1" after "other."
    assert texts(one)[1].endswith("for this one night.")  # <sup>2</sup> dropped
    assert len(texts(one)) == 2  # no script, no footnote body
    assert texts(two) == [
        ("By dawn the storm had passed. Tom counted the boats as they came home: one, two, three, "
         "and then, at last, a fourth."),
        ('His daughter ran up the path with bread and a letter.\n"They say you saved them all," '
         "she said.")]  # <br/>: a line break inside the paragraph


def test_epub_without_navigation_has_a_chapter_per_document(tmp_path):
    path = write_epub(tmp_path / "plain.epub", {
        "a.xhtml": XHTML.format(body="<h2>The Start</h2><p>First <i>words</i>.</p>"),
        "empty.xhtml": XHTML.format(body="<p>  </p><img src='x.png' alt='picture'/>"),
        "b.xhtml": XHTML.format(body="<div>No heading<br/>here.<script>var x;</script></div>"),
    })
    book = read_book(path)
    assert (book.title, book.author, book.language) == (
        "Test Book", "Ann Author, Bob Writer", "en-GB")
    assert [(c.index, c.title, texts(c)) for c in book.chapters] == [
        (1, "The Start", ["First words."]), (2, "Chapter 2", ["No heading\nhere."])]


def test_epub_nav_targets_split_documents_at_ids(tmp_path):
    body = ('<section id="c1"><h1>One</h1><p>Alpha.</p></section>'
            '<section id="c2"><h1>Two</h1><p>Beta.</p><p>Gamma.</p></section>')
    path = write_epub(tmp_path / "nav.epub", {"all.xhtml": XHTML.format(body=body)},
                      nav='<li><a href="all.xhtml#c1">First</a></li>'
                          '<li><a href="all.xhtml#c2">Second</a></li>')
    book = read_book(path)
    assert outline(book) == [
        ("First", ["One", "Alpha."]), ("Second", ["Two", "Beta.", "Gamma."])]


def test_epub2_ncx_labels_and_entities(tmp_path):
    epub2 = ('<?xml version="1.0"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
             '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n'
             '<html xmlns="http://www.w3.org/1999/xhtml"><body>'
             "<h1>I.</h1><p>Sea&nbsp;and&mdash;sky &amp; wind.</p></body></html>")
    broken = "<!DOCTYPE html><html><body><h1>Loomings</h1><p>Call&nbsp;me <p>Ishmael.</body>"
    path = write_epub(tmp_path / "ncx.epub", {"one.xhtml": epub2, "two.xhtml": broken}, ncx=(
        '<navPoint id="a"><navLabel><text>Chapter I</text></navLabel>'
        '<content src="one.xhtml"/></navPoint>'
        '<navPoint id="b"><navLabel><text>Loomings</text></navLabel>'
        '<content src="two.xhtml"/></navPoint>'))
    book = read_book(path)
    assert outline(book) == [
        ("Chapter I", ["Sea and\u2014sky & wind."]),  # heading "I." repeats the title
        ("Loomings", ["Call me", "Ishmael."])]  # not well-formed: read by lxml.html


def test_epub_does_not_expand_external_entities(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    doc = (f'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY xxe SYSTEM "file://{secret}">]>'
           '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Safe &xxe; text.</p></body></html>')
    book = read_book(write_epub(tmp_path / "xxe.epub", {"a.xhtml": doc}))
    assert "SECRET" not in texts(book.chapters[0])[0]


def test_epub_missing_spine_document_is_a_warning(tmp_path):
    path = write_epub(tmp_path / "gap.epub", {
        "a.xhtml": XHTML.format(body="<p>Present.</p>"),
        "b.xhtml": XHTML.format(body="<p>Also present.</p>"),
    }, extra_items='<item id="gone" href="gone.xhtml" media-type="application/xhtml+xml"/>',
        spine=["d0", "gone", "d1"], nav='<li><a href="gone.xhtml">The Lost Chapter</a></li>')
    book = read_book(path)
    assert [texts(c) for c in book.chapters] == [["Present."], ["Also present."]]
    assert book.warnings == (
        "spine document OEBPS/gone.xhtml (chapter 'The Lost Chapter') is missing from the archive; skipped",)


def encryption_xml(algorithm: str, uri: str) -> str:
    return ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            f'<enc:EncryptionMethod Algorithm="{algorithm}"/><enc:CipherData>'
            f'<enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData></encryption>')


def test_epub_font_obfuscation_is_not_drm(tmp_path):
    path = write_epub(
        tmp_path / "fonts.epub", {"a.xhtml": XHTML.format(body="<p>Readable.</p>")},
        extra_items='<item id="f" href="f.otf" media-type="font/otf"/>',
        extra_files={"OEBPS/f.otf": b"\0font",
                     "META-INF/encryption.xml": encryption_xml(
                         "http://ns.adobe.com/pdf/enc#RC", "OEBPS/f.otf")})
    assert texts(read_book(path).chapters[0]) == ["Readable."]


def test_epub_encrypted_text_is_refused_as_drm(tmp_path):
    path = write_epub(
        tmp_path / "drm.epub", {"a.xhtml": XHTML.format(body="<p>Readable?</p>")},
        extra_files={"META-INF/encryption.xml": encryption_xml(
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc", "OEBPS/a.xhtml")})
    with pytest.raises(BookError, match="DRM-protected") as error:
        read_book(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("name", sorted(BAD_EPUB_OUTCOMES))
def test_bad_epubs_read_leniently_or_fail_in_one_line(name):
    path = BAD_EPUBS / name
    if not path.exists():
        pytest.skip(f"{BAD_EPUBS} is not here")
    if BAD_EPUB_OUTCOMES[name] == "reject":
        with pytest.raises(BookError) as error:
            read_book(path)
        message = str(error.value)
        assert name in message and "\n" not in message
        assert BAD_EPUB_REASONS[name] in message
    else:
        book = read_book(path)
        assert len(book.chapters) >= 1
        assert any("Call me Ishmael." in p.text for c in book.chapters for p in c.paragraphs)


def test_bad_epubs_titles_from_navigation_or_heading():
    if not BAD_EPUBS.exists():
        pytest.skip(f"{BAD_EPUBS} is not here")
    # The nav label "content 001" only repeats the file name: the first heading names it.
    book = read_book(BAD_EPUBS / "ec-ocf-mimetype-file-missing-error.epub")
    assert outline(book) == [("Loomings", ["Call me Ishmael."])]
    book = read_book(BAD_EPUBS / "ec-opf-spine-missing-error.epub")
    assert [c.title for c in book.chapters] == ["Loomings"]  # from the NCX
    assert any("no spine" in w for w in book.warnings)


def test_every_bad_epub_has_an_expected_outcome():
    if not BAD_EPUBS.exists():
        pytest.skip(f"{BAD_EPUBS} is not here")
    listed = {entry["file"] for entry in json.loads((BAD_EPUBS / "MANIFEST.json").read_text())}
    assert {p.name for p in BAD_EPUBS.glob("*.epub")} == listed == set(BAD_EPUB_OUTCOMES)


# EPUB: structure, matter, notes, markup -------------------------------------------------------

def words(count: int, sentence: str = "The players speak their lines.") -> str:
    """At least `count` words of text: `sentence` repeated."""
    size = len(sentence.split())
    return " ".join([sentence] * -(-count // size))


def test_epub_matter_marked_by_epub_type_is_left_out_unless_all_matter(tmp_path):
    cover = ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml" '
             'xmlns:epub="http://www.idpf.org/2007/ops"><body epub:type="cover">'
             "<p>The Test Book, a novel</p></body></html>")
    path = write_epub(tmp_path / "matter.epub", {
        "cover.xhtml": cover,
        "title.xhtml": XHTML.format(body='<section epub:type="titlepage"><h1>Test Book</h1>'
                                         "<p>Ann Author</p></section>"),
        "toc.xhtml": XHTML.format(body='<nav epub:type="toc"><h2>Contents</h2><ol><li>'
                                       '<a href="one.xhtml">One</a></li></ol></nav>'),
        "one.xhtml": XHTML.format(body="<h1>One</h1><p>Story text.</p>"
                                       '<section role="doc-colophon"><p>Set in Caslon.</p></section>'),
        "index.xhtml": XHTML.format(body='<section epub:type="index"><p>whales, 1, 2</p></section>'),
    })
    book = read_book(path)
    assert outline(book) == [("One", ["Story text."])]
    assert book.warnings == (
        "left out front and back matter (cover, titlepage, toc, colophon, index); --all-matter reads it",)
    everything = read_book(path, all_matter=True)
    assert everything.warnings == ()
    assert outline(everything) == [
        ("Chapter 1", ["The Test Book, a novel"]), ("Test Book", ["Ann Author"]),
        ("Contents", ["One"]), ("One", ["Story text.", "Set in Caslon."]),
        ("Chapter 5", ["whales, 1, 2"])]


def test_epub3_landmarks_and_epub2_guide_name_matter(tmp_path):
    documents = {
        "front.xhtml": XHTML.format(body="<h1>Copyright</h1><p>All rights reserved.</p>"),
        "one.xhtml": XHTML.format(body="<h1>One</h1><p>Story text.</p>"),
        "back.xhtml": XHTML.format(body='<div id="ix"><p>Index: whales.</p></div><p>Afterword.</p>'),
    }
    epub3 = write_epub(tmp_path / "epub3.epub", documents, nav='<li><a href="one.xhtml">One</a></li>',
                       landmarks='<li><a epub:type="copyright-page" href="front.xhtml">C</a></li>'
                                 '<li><a epub:type="index" href="back.xhtml#ix">I</a></li>')
    epub2 = write_epub(tmp_path / "epub2.epub", documents, ncx=(
        '<navPoint id="o"><navLabel><text>One</text></navLabel><content src="one.xhtml"/></navPoint>'),
        guide='<reference type="copyright-page" href="front.xhtml"/>'
              '<reference type="index" href="back.xhtml#ix"/>')
    for path in (epub3, epub2):
        book = read_book(path)
        assert outline(book) == [("One", ["Story text.", "Afterword."])]  # back.xhtml: not in the nav
        assert book.warnings == ("left out front and back matter (copyright-page, index); --all-matter reads it",)
        assert "All rights reserved." in texts(read_book(path, all_matter=True).chapters[0])


def test_matter_that_would_leave_nothing_is_not_left_out(tmp_path):
    # One file that the guide calls the title page, while the nav points inside it for chapters.
    body = ('<section><h1>Test Book</h1></section><section id="c1"><h1>One</h1><p>Alpha.</p>'
            '</section><section id="c2"><h1>Two</h1><p>Beta.</p></section>')
    path = write_epub(tmp_path / "one-file.epub", {"all.xhtml": XHTML.format(body=body)},
                      nav='<li><a href="all.xhtml#c1">One</a></li><li><a href="all.xhtml#c2">Two</a></li>',
                      guide='<reference type="title-page" href="all.xhtml"/>')
    assert outline(read_book(path)) == [("One", ["Alpha."]), ("Two", ["Beta."])]

    # Everything the book has is marked as matter: read it all, and say so.
    path = write_epub(tmp_path / "all-cover.epub", {"a.xhtml": XHTML.format(body="<p>Only text.</p>")},
                      guide='<reference type="cover" href="a.xhtml"/>')
    book = read_book(path)
    assert [texts(c) for c in book.chapters] == [["Only text."]]
    assert "all the text is marked as front or back matter" in book.warnings[0]


def test_note_references_are_never_spoken_and_notes_are_left_out(tmp_path):
    body = ('<p>Call me Ishmael.<a epub:type="noteref" href="#n1">1</a> Some years ago<sup>2</sup> '
            'never<a href="notes.xhtml#n3">[3]</a> mind<span role="doc-noteref">*</span>.</p>'
            '<aside epub:type="footnote" id="n1"><p>A name.</p></aside>'
            '<p>Page<span epub:type="pagebreak" title="7">7</span> on.</p>')
    notes = ('<section epub:type="endnotes"><h2>Notes</h2><ol><li id="n3" epub:type="endnote">'
             "A note.</li></ol></section>")
    path = write_epub(tmp_path / "notes.epub", {"a.xhtml": XHTML.format(body=body),
                                                "notes.xhtml": XHTML.format(body=notes)},
                      nav='<li><a href="a.xhtml">Loomings</a></li>'
                          '<li><a href="notes.xhtml">Notes</a></li>')
    book = read_book(path)
    assert outline(book) == [
        ("Loomings", ["Call me Ishmael. Some years ago never mind.", "Page on."])]
    assert book.warnings == ("left out front and back matter (endnotes); --all-matter reads it",
                             "left out 1 note; --all-matter reads them")
    assert outline(read_book(path, all_matter=True)) == [  # the notes, never their markers
        ("Loomings", ["Call me Ishmael. Some years ago never mind.", "A name.", "Page on."]),
        ("Notes", ["A note."])]


def test_verse_lines_table_cells_and_inline_markup(tmp_path):
    body = ('<p class="verse">Tyger Tyger, burning bright,<br/>\n   In the forests\nof the night;'
            "<br/></p><table><tr><th>Ship</th><th>Tons</th></tr><tr><td>Pequod</td><td> 300 </td>"
            '</tr></table><p><span class="dropcap">C</span><span class="smallcaps">ALL ME</span> '
            "Ishmael. <em>Some <strong>years</strong> ago</em>\u2014never <a href='http://x.org'>"
            'mind</a> how <span style="font-variant: small-caps">LONG</span> <ruby>precisely'
            "<rt>x</rt></ruby>.<img src='p.png' alt='a picture'/></p><!-- a comment -->")
    book = read_book(write_epub(tmp_path / "verse.epub", {"a.xhtml": XHTML.format(body=body)}))
    assert texts(book.chapters[0]) == [
        "Tyger Tyger, burning bright,\nIn the forests of the night;",
        "Ship\nTons", "Pequod\n300",
        "Call me Ishmael. Some years ago\u2014never mind how long precisely."]


def play(acts: int = 2, scenes: int = 2, scene_words: int = 200) -> tuple[dict[str, str], str]:
    """A play: a file an act, a section a scene; and its nested nav (acts > scenes)."""
    documents, nav = {}, ""
    for a in range(1, acts + 1):
        sections = "".join(f'<section id="s{s}"><h2>Scene {s}</h2><p>{words(scene_words)}</p></section>'
                           for s in range(1, scenes + 1))
        documents[f"act{a}.xhtml"] = XHTML.format(body=f"<h1>Act {a}</h1>{sections}")
        nav += (f'<li><a href="act{a}.xhtml">Act {a}</a><ol>'
                + "".join(f'<li><a href="act{a}.xhtml#s{s}">Scene {s}</a></li>'
                          for s in range(1, scenes + 1)) + "</ol></li>")
    return documents, nav


def test_nested_navigation_gives_a_play_its_scenes(tmp_path):
    documents, nav = play()
    book = read_book(write_epub(tmp_path / "play.epub", documents, nav=nav))
    assert [c.title for c in book.chapters] == [
        "Act 1: Scene 1", "Scene 2", "Act 2: Scene 1", "Scene 2"]
    assert all(len(c.paragraphs) == 1 for c in book.chapters)  # headings spoken as the title


def test_nested_navigation_keeps_short_sections_in_their_chapter(tmp_path):
    documents, nav = play(scene_words=20)  # 20-word "scenes": sections of a chapter, not chapters
    book = read_book(write_epub(tmp_path / "sections.epub", documents, nav=nav))
    assert [(c.title, texts(c)[0]) for c in book.chapters] == [("Act 1", "Scene 1"),
                                                               ("Act 2", "Scene 1")]


def test_nested_ncx_and_entries_without_links(tmp_path):
    documents = {f"c{n}.xhtml": XHTML.format(body=f"<h1>Chapter {n}</h1><p>{words(200)}</p>")
                 for n in (1, 2, 3)}
    documents = {"part1.xhtml": XHTML.format(body="<h1>Part One</h1>"), **documents}
    point = '<navPoint id="{0}"><navLabel><text>{1}</text></navLabel><content src="{0}.xhtml"/>'
    ncx = (point.format("part1", "Part One") + point.format("c1", "Chapter 1") + "</navPoint>"
           + point.format("c2", "Chapter 2") + "</navPoint></navPoint>"
           + point.format("c3", "Chapter 3") + "</navPoint>")
    book = read_book(write_epub(tmp_path / "parts.epub", documents, ncx=ncx))
    assert [c.title for c in book.chapters] == ["Part One: Chapter 1", "Chapter 2", "Chapter 3"]

    nav = ('<li><span>Part One</span><ol><li><a href="c1.xhtml">Chapter 1</a></li>'
           '<li><a href="c2.xhtml">Chapter 2</a></li></ol></li><li><a href="c3.xhtml">Chapter 3</a></li>')
    book = read_book(write_epub(tmp_path / "unlinked.epub", documents, nav=nav))
    assert [c.title for c in book.chapters] == ["Part One: Chapter 1", "Chapter 2", "Chapter 3"]


def test_epub3_nav_is_preferred_to_the_ncx(tmp_path):
    path = write_epub(tmp_path / "both.epub", {"a.xhtml": XHTML.format(body="<p>Text.</p>")},
                      nav='<li><a href="a.xhtml">From the nav</a></li>',
                      ncx='<navPoint id="a"><navLabel><text>From the NCX</text></navLabel>'
                          '<content src="a.xhtml"/></navPoint>')
    assert [c.title for c in read_book(path).chapters] == ["From the nav"]


def test_epub2_sample_reads_as_the_markdown_it_came_from():
    epub2 = read_book(SAMPLES / "moby-dick-epub2.epub")
    markdown = read_book(SAMPLES / "moby-dick-opening.md")
    assert (epub2.title, epub2.author, epub2.language) == (
        markdown.title, markdown.author, markdown.language)
    assert outline(epub2) == outline(markdown)
    assert epub2.warnings == (
        "left out front and back matter (title-page, copyright-page, toc); --all-matter reads it",)


def test_poetry_sample_is_a_chapter_a_poem():
    book = read_book(SAMPLES / "blake-poems.epub")
    assert [c.title for c in book.chapters] == ["The Lamb", "The Tyger", "The Sick Rose"]
    tyger = texts(book.chapters[1])
    assert len(tyger) == 6  # stanzas
    assert tyger[0] == ("Tyger Tyger, burning bright,\nIn the forests of the night;\n"
                        "What immortal hand or eye,\nCould frame thy fearful symmetry?")
    assert book.warnings == ("left out front and back matter (title-page, rearnotes); --all-matter reads it",)


def test_samples_match_their_script(tmp_path):
    sys.path.insert(0, str(SAMPLES))
    try:
        import make_epub
    finally:
        sys.path.remove(str(SAMPLES))
    for builder, sample in [(make_epub.build, "two-chapters.epub"),
                            (make_epub.build_epub2, "moby-dick-epub2.epub"),
                            (make_epub.build_poems, "blake-poems.epub")]:
        built = read_book(builder(tmp_path / sample))
        assert outline(built) == outline(read_book(SAMPLES / sample)), sample


# EPUB: untrusted files -----------------------------------------------------------------------

def patch_central_size(path: Path, name: str, size: int) -> None:
    """Make the archive's central directory declare `size` expanded bytes for `name`."""
    data = bytearray(path.read_bytes())
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(name.encode()))  # its central directory record
    struct.pack_into("<I", data, entry + 24, size)
    path.write_bytes(bytes(data))


def one_page_epub(path: Path, **extra) -> Path:
    return write_epub(path, {"a.xhtml": XHTML.format(body="<p>Readable.</p>")}, **extra)


def test_zip_bomb_is_refused_by_its_packing_ratio(tmp_path):
    path = one_page_epub(tmp_path / "bomb.epub", extra_files={"OEBPS/zeros.bin": bytes(8 * MIB)})
    with pytest.raises(BookError, match=r"zeros\.bin expands to 8\.0 MiB .*ZIP bomb") as error:
        read_book(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_zip_entry_declaring_an_absurd_size_is_refused(tmp_path):
    path = one_page_epub(tmp_path / "huge.epub", extra_files={"OEBPS/big.png": b"not big"})
    patch_central_size(path, "OEBPS/big.png", MAX_ENTRY_BYTES + 1)
    with pytest.raises(BookError, match=r"big\.png expands to 256\.0 MiB"):
        read_book(path)


def test_zip_entry_larger_than_declared_is_refused_with_memory_bounded(tmp_path):
    path = one_page_epub(tmp_path / "liar.epub", extra_files={"OEBPS/liar.bin": bytes(32 * MIB)})
    patch_central_size(path, "OEBPS/liar.bin", 1000)  # declares 1,000 bytes, holds 32 MiB
    tracemalloc.start()
    try:
        with pytest.raises(BookError, match=r"damaged ZIP archive \(Bad CRC-32 for file 'OEBPS/liar\.bin'"):
            read_book(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB  # the 32 MiB were never held


def test_too_many_zip_entries_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(epub_reader, "MAX_ENTRIES", 5)
    path = one_page_epub(tmp_path / "many.epub", extra_files={f"OEBPS/{n}.txt": "x" for n in range(5)})
    with pytest.raises(BookError, match="9 files in the archive, more than a book has"):
        read_book(path)


@pytest.mark.parametrize("name", ["../evil.xhtml", "OEBPS/../../evil.xhtml", "/etc/evil",
                                  "C:evil.xhtml", "OEBPS\\..\\..\\evil.xhtml"])
def test_zip_entry_names_that_escape_the_folder_are_refused(tmp_path, name):
    path = one_page_epub(tmp_path / "escape.epub", extra_files={name: "x"})
    with pytest.raises(BookError, match="unsafe file name .* in the archive"):
        read_book(path)


def test_manifest_paths_resolve_inside_the_archive_only(tmp_path):
    (tmp_path / "secret.xhtml").write_text(XHTML.format(body="<p>TOP SECRET</p>"))
    (tmp_path / "book").mkdir()
    path = write_epub(tmp_path / "book" / "up.epub", {"a.xhtml": XHTML.format(body="<p>Readable.</p>")},
                      extra_items='<item id="up" href="../../secret.xhtml" '
                                  'media-type="application/xhtml+xml"/>',
                      spine=["d0", "up"])
    book = read_book(path)
    assert [texts(c) for c in book.chapters] == [["Readable."]]
    assert book.warnings == ("spine document ../secret.xhtml is missing from the archive; skipped",)


LAUGHS = ('<!DOCTYPE {root} [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'
                    for n in range(1, 10)) + "]>")


def rewrite_entry(path: Path, name: str, change) -> None:
    """Replace archive entry `name` with change(its bytes), keeping the others as they are."""
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    files[name] = change(files[name])
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in files.items():
            archive.writestr(n, data)


def with_doctype(doctype: str):
    """A change for rewrite_entry: `doctype` put before the root element."""
    return lambda data: data.replace(b"?>", b"?>" + doctype.encode(), 1) if data.startswith(b"<?xml") \
        else doctype.encode() + data


LAUGHS = ('<!DOCTYPE {root} [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">'
                    for n in range(1, 10)) + "]>")  # "billion laughs": &lol9; is 10^9 "lol"s


def test_entity_expansion_is_bounded(tmp_path):
    page = ('<?xml version="1.0"?>' + LAUGHS.format(root="html")
            + '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Laugh: &lol9;.</p></body></html>')
    ncx = '<navPoint id="a"><navLabel><text>Ha &lol9;</text></navLabel><content src="a.xhtml"/></navPoint>'
    path = write_epub(tmp_path / "laughs.epub", {"a.xhtml": page}, ncx=ncx)
    rewrite_entry(path, "OEBPS/toc.ncx", with_doctype(LAUGHS.format(root="ncx")))
    # Read, never expanded; libxml2 gives up on the NCX at the entity, so its entry has no link.
    assert outline(read_book(path)) == [("Chapter 1", ["Laugh: ."])]

    path = write_epub(tmp_path / "laughs.epub", {"a.xhtml": page}, title="Ha &lol9;")
    rewrite_entry(path, "OEBPS/content.opf", with_doctype(LAUGHS.format(root="package")))
    with pytest.raises(BookError, match="content.opf is not well-formed XML .*amplification"):
        read_book(path)  # libxml2 refuses the package document outright


def test_epub_package_and_ncx_do_not_expand_external_entities(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    doctype = '<!DOCTYPE {root} [<!ENTITY xxe SYSTEM "file://' + str(secret) + '">]>'
    path = write_epub(tmp_path / "xxe.epub", {"a.xhtml": XHTML.format(body="<p>Text.</p>")},
                      ncx='<navPoint id="a"><navLabel><text>Label &xxe;</text></navLabel>'
                          '<content src="a.xhtml"/></navPoint>', title="Title &xxe;")
    rewrite_entry(path, "OEBPS/content.opf", with_doctype(doctype.format(root="package")))
    rewrite_entry(path, "OEBPS/toc.ncx", with_doctype(doctype.format(root="ncx")))
    book = read_book(path)
    assert (book.title, [c.title for c in book.chapters]) == ("Title", ["Label"])


# Markdown: front matter, tables, comments, breaks -------------------------------------------

def test_markdown_yaml_front_matter(tmp_path):
    path = tmp_path / "yaml.md"
    path.write_text('---\ntitle: "Moby-Dick: or, The Whale"\nauthors:\n  - Herman Melville\n'
                    "  - Ann Editor\nlang: en-US\ntags: [sea, whales]\n---\n\n# Ignored H1\n\nText.\n")
    book = read_book(path)
    assert (book.title, book.author, book.language) == (
        "Moby-Dick: or, The Whale", "Herman Melville, Ann Editor", "en-US")

    path.write_text("---\ntitle: 1984\nauthor: George Orwell\n...\n\nText.\n")
    assert (read_book(path).title, read_book(path).author) == ("1984", "George Orwell")

    path.write_text("---\ntitle: [unclosed\n---\n\nText.\n")  # not YAML: a rule and a heading
    assert read_book(path).title == "yaml"


def test_markdown_tables_comments_images_and_verse(tmp_path):
    path = tmp_path / "rich.md"
    path.write_text(
        "# Rich\n\n<!-- an editor's note,\nover two lines -->\n\n| Ship | Tons |\n|------|-----:|\n"
        "| *Pequod* | 300 |\n\nTyger Tyger, burning bright,  \nIn the forests of the night;\\\n"
        "What immortal hand <!-- inline --> or eye,\n\n![the tyger](tyger.png)\n\n"
        "<div>raw html</div>\n")
    (chapter,) = read_book(path).chapters
    assert texts(chapter) == [
        "Ship\nTons", "Pequod\n300",
        "Tyger Tyger, burning bright,\nIn the forests of the night;\nWhat immortal hand or eye,"]


def test_markdown_line_endings_read_the_same(tmp_path):
    text = "---\ntitle: Ends\n---\n\n# One\n\nFirst line\nsame paragraph.\n\nSecond.  \nVerse.\n"
    readings = []
    for name, ending in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")]:
        path = tmp_path / f"{name}.md"
        path.write_bytes(text.replace("\n", ending).encode())
        readings.append((read_book(path).title, outline(read_book(path))))
    mixed = tmp_path / "mixed.md"
    mixed.write_bytes("".join(line + ("\r\n" if n % 2 else "\n")
                              for n, line in enumerate(text.split("\n")[:-1])).encode())
    readings.append((read_book(mixed).title, outline(read_book(mixed))))
    assert readings == [("Ends", [("One", ["First line same paragraph.", "Second.\nVerse."])])] * 4
