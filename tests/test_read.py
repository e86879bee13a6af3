"""Tests for the readers: Markdown and EPUB in, Book out; every broken file a one-line BookError."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from renderer.book import BookError
from renderer.read import read_book

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
               ncx: str | None = None, spine: list[str] | None = None,
               extra_items: str = "", extra_files: dict[str, str | bytes] | None = None) -> Path:
    """A small EPUB: `documents` maps file names under OEBPS/ to XHTML, spine in that order."""
    items = [f'<item id="d{i}" href="{name}" media-type="application/xhtml+xml"/>'
             for i, name in enumerate(documents)]
    files = {f"OEBPS/{name}": text for name, text in documents.items()}
    if nav is not None:
        items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
                     'properties="nav"/>')
        files["OEBPS/nav.xhtml"] = XHTML.format(body=f'<nav epub:type="toc"><ol>{nav}</ol></nav>')
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
    <dc:identifier id="id">x</dc:identifier><dc:title>Test Book</dc:title>
    <dc:creator>Ann Author</dc:creator><dc:creator opf:role="aut">Bob Writer</dc:creator>
    <dc:creator opf:role="ill">Ivy Illustrator</dc:creator>
    <dc:language>en-GB</dc:language>
  </metadata>
  <manifest>{"".join(items)}{extra_items}</manifest>
  <spine{' toc="ncx"' if ncx is not None else ''}>
    {"".join(f'<itemref idref="{r}"/>' for r in refs)}</spine>
</package>"""
    with zipfile.ZipFile(path, "w") as archive:
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
    assert book.warnings == ()
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
        ('His daughter ran up the path with bread and a letter. "They say you saved them all," '
         "she said.")]


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
        (1, "The Start", ["First words."]), (2, "Chapter 2", ["No heading here."])]


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
        spine=["d0", "gone", "d1"])
    book = read_book(path)
    assert [texts(c) for c in book.chapters] == [["Present."], ["Also present."]]
    assert len(book.warnings) == 1 and "OEBPS/gone.xhtml" in book.warnings[0]


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
