"""EPUB 2 and 3 in, Book out, through ebooklib.

The archive is checked first with zipfile and lxml, so that each way a file can be broken or
hostile (a ZIP bomb, an entry named `../x`) gets one plain BookError line; then ebooklib reads it,
told where the package document is and made to read past manifest items missing from the archive.
Chapters follow the book's own navigation (the EPUB 3 nav document, else the NCX), at the deepest
level whose entries are not mere fragments (`_chapter_depth`); without navigation, each spine
document with text is a chapter. Front and back matter the book marks as such (epub:type, EPUB 3
landmarks, the EPUB 2 guide) and notes are left out unless `all_matter`.
"""
from __future__ import annotations

import html.entities
import posixpath
import re
import statistics
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag

import ebooklib
import lxml.html
from ebooklib import epub
from lxml import etree

from renderer.book import Book, BookError, Chapter, Paragraph, picture_type, year_of
from renderer.read.plain import LINE_BREAK, count_words, source_spaces, tidy_lines

CONTAINER = "META-INF/container.xml"
ENCRYPTION = "META-INF/encryption.xml"
PACKAGE_MEDIA_TYPE = "application/oebps-package+xml"
CONTENT_MEDIA_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/x-dtbook+xml"})
CONTENT_EXTENSIONS = (".xhtml", ".html", ".htm")  # what an encrypted content document is called
NS = {
    "opf": "http://www.idpf.org/2007/opf",
    "enc": "http://www.w3.org/2001/04/xmlenc#",
}
EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"
AUTHOR_ROLE = "aut"  # MARC relator code of dc:creator opf:role

# What a book may hold before it is refused as absurd (a ZIP bomb, most likely).
MIB = 1 << 20
MAX_ENTRIES = 20_000  # files in the archive; a book with many pictures has a few thousand
MAX_ENTRY_BYTES = 256 * MIB  # one file, expanded; a book's largest picture is a few MiB
MAX_BOOK_BYTES = 1024 * MIB  # every file, expanded: ebooklib holds them all in memory
MAX_RATIO = 100  # expanded / compressed size of a file over RATIO_FLOOR; text packs about 4:1
RATIO_FLOOR = MIB  # small files may pack tighter without harm
READ_BLOCK = MIB  # bytes decompressed at a time while sizes are checked: memory stays bounded
_DRIVE = re.compile(r"[A-Za-z]:")  # "C:evil" is absolute on Windows

BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
    "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "tfoot", "thead", "tr", "ul",
})
HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
LINE_TAGS = frozenset({"br", "td", "th"})  # end a line (a pause), not a paragraph
SKIPPED_TAGS = frozenset({"head", "script", "style", "template", "rp", "rt"})
SMALL_CAPS_CLASSES = frozenset({"smallcaps", "small-caps", "smcap", "smcaps", "sc"})

# epub:type and DPUB-ARIA role values (role without its "doc-"), and the EPUB 2 guide's types.
MARKER_TYPES = frozenset({"noteref", "pagebreak"})  # never spoken, not even with all_matter
NOTE_TYPES = frozenset({"footnote", "endnote", "rearnote", "note"})  # one note each
MATTER_TYPES = frozenset({
    "cover", "titlepage", "title-page", "halftitlepage", "seriespage", "imprint", "imprimatur",
    "copyright-page", "toc", "toc-brief", "landmarks", "loi", "lot", "page-list", "colophon",
    "index", "endnotes", "rearnotes", "footnotes", "notes",  # "notes": the guide's endnotes
})
NOTE = "note"  # the kind of a left-out note, for the warning
NOTE_MARKER = re.compile(r"[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3})[\])]?")  # "1", "[12]", "*"
UNRESOLVED_ENTITY = re.compile(r"&[A-Za-z][A-Za-z0-9]*;")  # left as text by the HTML fallback
_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(?:\[.*?\]\s*)?>", re.DOTALL | re.IGNORECASE)

MIN_CHAPTER_WORDS = 150  # median words of a navigation level's chapters: about a minute of speech

# What ebooklib raises on a package it cannot make sense of, after the checks here passed.
EBOOKLIB_ERRORS = (epub.EpubException, KeyError, TypeError, AttributeError, IndexError,
                   ValueError, etree.LxmlError, zipfile.BadZipFile, zlib.error, EOFError)
NAV_ERRORS = (AttributeError, IndexError, TypeError, ValueError, etree.LxmlError)


@dataclass(frozen=True)
class _Block:
    """One paragraph-like block of a content document, and the ids that start in it."""

    text: str
    heading: bool
    ids: tuple[str, ...]


@dataclass
class _Document:
    """A spine document's text, and what of it was left out."""

    name: str  # file name relative to the package
    blocks: list[_Block] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # the kind of each left-out part with text
    dropped_ids: set[str] = field(default_factory=set)  # ids inside left-out parts


@dataclass(frozen=True)
class _Entry:
    """One navigation entry; `document` is "" for a heading with no link of its own."""

    label: str
    document: str  # file name relative to the package
    fragment: str | None
    depth: int  # 1: the top level


@dataclass
class _Draft:
    """A chapter being gathered: its navigation label ("" for none) and depth, and its blocks."""

    label: str
    depth: int
    document: str
    blocks: list[_Block] = field(default_factory=list)


def read_epub(path: Path, all_matter: bool = False) -> Book:
    """Read an EPUB 2 or 3 file into a Book, chapters in spine order.

    Title, author and language come from the package metadata. Unless `all_matter`, front and back
    matter that the book marks as such (cover, title page, contents, copyright, colophon, index,
    endnotes) and notes are left out. Book.warnings names what was skipped or left out.
    Raises BookError, one line naming the file, for a file that is not a readable EPUB, is
    DRM-protected or absurdly large for a book, or has no text.
    """
    if path.stat().st_size == 0:
        raise BookError(f"{path}: the file is empty (0 bytes)")
    opf_path = _check_archive(path)
    reader = _LenientReader(path, opf_path)
    try:
        ebook = reader.load()
    except EBOOKLIB_ERRORS as error:
        problem = _one_line(f"{type(error).__name__}: {error}")
        raise BookError(f"{path}: damaged EPUB package ({problem})") from None

    if not any(idref for idref, _ in ebook.spine):
        raise BookError(f"{path}: the spine is empty: no readable content")
    warnings = list(reader.warnings)
    named = {posixpath.normpath(item.file_name) for item in map(ebook.get_item_with_id, dict(ebook.spine))
             if item is not None}
    entries = _nav_entries(ebook, named)
    labels = {e.document: e.label for e in reversed(entries) if e.fragment is None}
    spine = list(_spine_items(ebook, reader, labels, warnings))
    chapters, left_out = _read_text(ebook, reader.opf_dir, spine, entries, all_matter)
    if not chapters and left_out:
        warnings.append("all the text is marked as front or back matter or notes; reading it all")
        chapters, left_out = _read_text(ebook, reader.opf_dir, spine, entries, all_matter=True)
    if not chapters:
        raise BookError(f"{path}: no readable text in the book's content documents")
    cover, cover_type = _cover(ebook, warnings)
    return Book(
        path=path,
        title=_first(ebook, "title") or path.stem,
        author=", ".join(_authors(ebook)),
        language=_first(ebook, "language"),
        chapters=chapters,
        warnings=tuple(warnings + _left_out_warnings(left_out)),
        year=year_of(_first(ebook, "date")),
        cover=cover,
        cover_type=cover_type,
    )


def _read_text(ebook: epub.EpubBook, opf_dir: str, spine: list[tuple[str, bytes]],
               entries: list[_Entry], all_matter: bool) -> tuple[tuple[Chapter, ...], list[str]]:
    """The chapters of the spine's documents, and the kinds of what was left out."""
    matter = {} if all_matter else _matter_targets(ebook, opf_dir, entries)
    documents = []
    for name, content in spine:
        if (name, None) in matter:
            had_text = _document(name, content, {}, all_matter=True).blocks
            documents.append(_Document(name, left_out=[matter[name, None]] if had_text else [],
                                       dropped_ids={""}))
        else:
            ids = {fragment: kind for (doc, fragment), kind in matter.items() if doc == name}
            documents.append(_document(name, content, ids, all_matter))
    gone = {(d.name, i or None) for d in documents for i in d.dropped_ids} | set(matter)
    kept = [e for e in entries if (e.document, e.fragment) not in gone
            and (e.document, None) not in gone]
    left_out = [kind for d in documents for kind in d.left_out]
    return _chapters(_drafts(documents, kept)), left_out


def _left_out_warnings(left_out: list[str]) -> list[str]:
    """One line for the matter left out, one for the notes; [] when nothing was."""
    lines = []
    matter = list(dict.fromkeys(kind for kind in left_out if kind != NOTE))
    if matter:
        lines.append(f"left out front and back matter ({', '.join(matter)}); "
                     "--all-matter reads it")
    notes = left_out.count(NOTE)
    if notes:
        lines.append(f"left out {notes} note{'s' if notes > 1 else ''}; --all-matter reads them")
    return lines


# the archive -----------------------------------------------------------------------------------

def _check_archive(path: Path) -> str:
    """Check the ZIP, its sizes and names, the container and the package document; refuse DRM.

    Returns the package document's path in the archive.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise BookError(f"{path}: not a ZIP archive, so not an EPUB") from None
    try:
        with archive:
            _check_entries(archive, path)
            names = set(archive.namelist())
            if CONTAINER not in names:
                raise BookError(f"{path}: no {CONTAINER}: a ZIP archive, but not an EPUB")
            opf_path = _package_path(_parse_xml(archive.read(CONTAINER), path, CONTAINER), path)
            if opf_path not in names:
                raise BookError(f"{path}: the package document {opf_path} is missing")
            package = _parse_xml(archive.read(opf_path), path, f"the package document {opf_path}")
            if ENCRYPTION in names:
                _refuse_drm(_parse_xml(archive.read(ENCRYPTION), path, ENCRYPTION),
                            _content_documents(package, opf_path), path)
            return opf_path
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as error:
        raise BookError(f"{path}: damaged ZIP archive ({_one_line(str(error))})") from None


def _check_entries(archive: zipfile.ZipFile, path: Path) -> None:
    """BookError for an archive no book needs: too many files, a file name that would leave the
    folder it is extracted into, or sizes (declared, then actual) over the limits above.

    Files are decompressed a block at a time and thrown away: memory stays bounded whatever the
    archive claims. (zipfile stops a file at its declared size; a lie shows as a bad CRC.)
    """
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise BookError(f"{path}: {len(infos):,} files in the archive, more than a book has "
                        f"(at most {MAX_ENTRIES:,}); refused")
    declared = 0
    for info in infos:
        if _escapes(info.filename):
            raise BookError(f"{path}: unsafe file name {info.filename!r} in the archive "
                            "(it would leave the book's folder); refused")
        declared += info.file_size
        packed = info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * info.compress_size
        if info.file_size > MAX_ENTRY_BYTES or declared > MAX_BOOK_BYTES or packed:
            raise _too_large(path, info, info.file_size)
    actual = 0
    for info in infos:
        size = 0
        with archive.open(info) as entry:
            while block := entry.read(READ_BLOCK):
                size += len(block)
                actual += len(block)
                if size > MAX_ENTRY_BYTES or actual > MAX_BOOK_BYTES:
                    raise _too_large(path, info, size)


def _too_large(path: Path, info: zipfile.ZipInfo, size: int) -> BookError:
    ratio = size / max(info.compress_size, 1)
    return BookError(f"{path}: {info.filename} expands to {size / MIB:,.1f} MiB ({ratio:,.0f} times "
                     "its packed size), absurd for a book (a ZIP bomb?); refused")


def _escapes(name: str) -> bool:
    """Whether an archive file name, extracted into a folder, would land outside it."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or bool(_DRIVE.match(name)) or ".." in parts or "\0" in name


def _safe_xml_parser() -> etree.XMLParser:
    """An XML parser that fetches nothing, expands no entities and refuses huge trees."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False)


def _parse_xml(data: bytes, path: Path, name: str) -> etree._Element:
    """Parse an XML file of the package; BookError if it is not well-formed."""
    try:
        return etree.fromstring(data, _safe_xml_parser())
    except etree.XMLSyntaxError as error:
        raise BookError(f"{path}: {name} is not well-formed XML ({_one_line(str(error))})") from None


def _one_line(text: str) -> str:
    """A library's error message as one line, for the end of a BookError."""
    return " ".join(text.split())


def _package_path(container: etree._Element, path: Path) -> str:
    """The package document's path, from the container's first suitable <rootfile>."""
    for rootfile in container.iter("{*}rootfile"):
        media_type = rootfile.get("media-type", PACKAGE_MEDIA_TYPE)
        if rootfile.get("full-path") and media_type == PACKAGE_MEDIA_TYPE:
            return posixpath.normpath(rootfile.get("full-path").lstrip("/"))
    raise BookError(f"{path}: {CONTAINER} names no package document (no rootfile full-path)")


def _content_documents(package: etree._Element, opf_path: str) -> set[str]:
    """Archive paths of the manifest's (X)HTML documents."""
    base = posixpath.dirname(opf_path)
    return {
        posixpath.normpath(posixpath.join(base, unquote(item.get("href", ""))))
        for item in package.iterfind("opf:manifest/opf:item", NS)
        if item.get("media-type") in CONTENT_MEDIA_TYPES
    }


def _refuse_drm(encryption: etree._Element, content: set[str], path: Path) -> None:
    """BookError when encryption.xml covers a content document. Encrypted fonts alone (IDPF or
    Adobe font obfuscation) leave the text readable and pass."""
    for reference in encryption.iterfind(".//enc:EncryptedData/enc:CipherData/enc:CipherReference",
                                         NS):
        target = posixpath.normpath(unquote(reference.get("URI", "")).lstrip("/"))
        if target in content or target.lower().endswith(CONTENT_EXTENSIONS):
            raise BookError(f"{path}: the text is DRM-protected (encrypted content documents, "
                            f"such as {target})")


class _LenientReader(epub.EpubReader):
    """ebooklib's reader, told where the package document is, reading past missing files and
    unreadable navigation, and falling back to manifest order for a package without a spine.
    The EPUB 3 nav document is preferred to the NCX (ignore_ncx: the NCX is read without one)."""

    def __init__(self, path: Path, opf_path: str):
        super().__init__(str(path), options={"ignore_ncx": True})
        self.opf_path = opf_path
        self.missing: set[str] = set()  # archive paths the manifest lists but the ZIP lacks
        self.warnings: list[str] = []

    def _load_container(self):
        self.opf_file = self.opf_path
        self.opf_dir = posixpath.dirname(self.opf_path)

    def read_file(self, name):
        try:
            return super().read_file(name)
        except KeyError:  # a missing manifest item; only a missing spine document matters
            self.missing.add(posixpath.normpath(name))
            return b""

    def _load_spine(self):
        if self.container.find("opf:spine", NS) is None:
            self.warnings.append("the package has no spine; documents are read in manifest order")
            self.book.spine = [(item.id, "yes") for item in self.book.get_items()
                               if item.media_type in CONTENT_MEDIA_TYPES
                               and not isinstance(item, epub.EpubNav)]
            self._parse_book_ncx()
            return
        try:
            super()._load_spine()
        except (epub.EpubException, AttributeError):  # the spine names an NCX that is not there
            self.warnings.append("the NCX table of contents is missing")

    def _parse_book_ncx(self) -> None:
        ncx = next(self.book.get_items_of_type(ebooklib.ITEM_NAVIGATION), None)
        if ncx is not None:
            self._parse_ncx(ncx.content)

    def _parse_ncx(self, data):
        try:
            super()._parse_ncx(data)
        except NAV_ERRORS:
            self.warnings.append("the NCX table of contents is unreadable")
            self.book.toc = []

    def _parse_nav(self, data, base_path, navtype="toc"):
        try:
            super()._parse_nav(data, base_path, navtype=navtype)
        except NAV_ERRORS:
            if navtype == "toc":
                self.warnings.append("the navigation document is unreadable; trying the NCX")
                self.book.toc = []
                self._parse_book_ncx()


def _spine_items(ebook: epub.EpubBook, reader: _LenientReader, labels: dict[str, str],
                 warnings: list[str]) -> Iterator[tuple[str, bytes]]:
    """(file name relative to the package, content) of each readable spine document, in order.

    The navigation document is skipped (its list of chapters is not read aloud), and so are
    non-linear documents (notes, pop-ups); skipped ones get a warning, which names the chapter
    (its navigation label in `labels`, by file name) of one missing from the archive.
    """
    for idref, linear in ebook.spine:
        if idref is None:  # a comment inside <spine>
            continue
        item = ebook.get_item_with_id(idref)
        if item is None:
            warnings.append(f"spine entry {idref!r} is not in the manifest; skipped")
            continue
        archive_path = posixpath.normpath(posixpath.join(reader.opf_dir, item.file_name))
        if archive_path in reader.missing:
            chapter = f" (chapter {labels[item.file_name]!r})" if item.file_name in labels else ""
            warnings.append(f"spine document {archive_path}{chapter} is missing from the archive; skipped")
        elif linear == "no":
            warnings.append(f"non-linear spine document {archive_path} skipped")
        elif item.media_type not in CONTENT_MEDIA_TYPES:
            warnings.append(f"spine item {archive_path} ({item.media_type}) is not text; skipped")
        elif not isinstance(item, epub.EpubNav):
            yield posixpath.normpath(item.file_name), item.content


# content documents -----------------------------------------------------------------------------

def _document(name: str, content: bytes, matter_ids: dict[str, str], all_matter: bool) -> _Document:
    """The text blocks of one XHTML document, in order, and what was left out of it.

    Block elements end a block; <br>, and table cells, end a line within one. Note references and
    page-break markers are never read; notes, matter (by epub:type or role) and the elements whose
    ids `matter_ids` names are left out unless `all_matter`. Small caps written in capitals are
    read as ordinary words. A document that cannot be parsed has no blocks.
    """
    document = _Document(name)
    root = _parse_document(content)
    if root is None:
        return document
    body = next((el for el in root.iter() if isinstance(el.tag, str) and _local(el.tag) == "body"),
                root)
    parts: list[str] = []
    ids: list[str] = []

    def flush(heading: bool = False) -> None:
        text = tidy_lines(UNRESOLVED_ENTITY.sub(" ", "".join(parts)))
        parts.clear()
        if text:
            document.blocks.append(_Block(text, heading, tuple(ids)))
            ids.clear()

    def walk(element: etree._Element, lower: bool) -> None:
        """Gather an element's text; `lower`: it sits inside small caps, its tail too."""
        if not isinstance(element.tag, str):  # a comment, processing instruction or entity
            if element.tag is etree.Entity:
                parts.append(html.entities.html5.get(f"{element.name};", ""))
            parts.append(_cased(element.tail, lower))
            return
        tag = _local(element.tag)
        kind = _left_out_kind(element, tag, matter_ids, all_matter)
        if tag in SKIPPED_TAGS or kind:
            if kind and kind not in MARKER_TYPES and count_words("".join(element.itertext())):
                document.left_out.append(kind)
            document.dropped_ids.update(el.get("id") for el in element.iter()
                                        if isinstance(el.tag, str) and el.get("id"))
            parts.append(_cased(element.tail, lower))
            return
        block = tag in BLOCK_TAGS
        if block:
            flush()
        if element.get("id"):
            ids.append(element.get("id"))
        inner = lower or _is_small_caps(element)
        line = LINE_BREAK if tag in LINE_TAGS else ""
        parts.append(line + _cased(element.text, inner))
        for child in element:
            walk(child, inner)
        if block:
            flush(heading=tag in HEADING_TAGS)
        parts.append(line + _cased(element.tail, lower))

    walk(body, lower=False)
    flush()
    if not document.blocks and document.left_out:
        document.dropped_ids.add("")  # all of it was left out: navigation to it names nothing
    return document


def _parse_document(content: bytes) -> etree._Element | None:
    """Parse XHTML safely; non-well-formed documents (HTML entities, stray tags) go to lxml.html."""
    if not content or not content.strip():
        return None
    try:
        return etree.fromstring(content, _safe_xml_parser())
    except etree.XMLSyntaxError:
        try:  # lxml.html reads an internal DTD subset ("<!DOCTYPE html [...]>") as text
            return lxml.html.document_fromstring(_DOCTYPE.sub(b"", content, count=1))
        except (etree.ParserError, ValueError):
            return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _types(element: etree._Element) -> set[str]:
    """An element's epub:type values and DPUB-ARIA roles ("doc-endnotes" as "endnotes")."""
    types = (element.get(EPUB_TYPE) or element.get("epub:type") or "").split()
    roles = (element.get("role") or "").split()
    return {t.rsplit(":", 1)[-1] for t in types} | {r.removeprefix("doc-") for r in roles}


def _left_out_kind(element: etree._Element, tag: str, matter_ids: dict[str, str],
                   all_matter: bool) -> str | None:
    """Why an element is not read: a marker type, NOTE, a matter type; None to read it."""
    types = _types(element)
    marker = types & MARKER_TYPES
    if marker:
        return marker.pop()
    if _is_marker_text(element, tag):
        return "noteref"
    if all_matter:
        return None
    if types & NOTE_TYPES:
        return NOTE
    matter = sorted(types & MATTER_TYPES)
    return matter[0] if matter else matter_ids.get(element.get("id", ""))


def _is_marker_text(element: etree._Element, tag: str) -> bool:
    """A note reference the book does not mark as one: "<sup>3</sup>", "<a href=#n3>[3]</a>"."""
    if tag == "sup":  # "<sup>3</sup>" or "<sup><a href=...>...</a></sup>"
        only_link = (len(element) == 1 and _local(str(element[0].tag)) == "a"
                     and not (element.text or "").strip() and not (element[0].tail or "").strip())
        return only_link or _is_marker(element)
    return tag == "a" and "#" in element.get("href", "") and _is_marker(element)


def _is_marker(element: etree._Element) -> bool:
    return bool(NOTE_MARKER.fullmatch("".join(element.itertext()).strip()))


def _is_small_caps(element: etree._Element) -> bool:
    classes = set((element.get("class") or "").lower().split())
    style = (element.get("style") or "").lower().replace(" ", "")
    return bool(classes & SMALL_CAPS_CLASSES) or "font-variant:small-caps" in style


def _cased(text: str | None, lower: bool) -> str:
    """Source text; inside small caps, capitals as lower case ("C<sc>ALL ME</sc>": "Call me")."""
    text = source_spaces(text)
    return text.lower() if lower and text.isupper() else text


# navigation and matter -------------------------------------------------------------------------

def _nav_entries(ebook: epub.EpubBook, spine_names: set[str]) -> list[_Entry]:
    """The navigation's entries in reading order, each with its depth.

    Nav-document hrefs arrive relative to the package; NCX ones relative to the NCX, so both
    readings are tried and the spine decides which one names a document.
    """
    ncx = next(ebook.get_items_of_type(ebooklib.ITEM_NAVIGATION), None)
    ncx_dir = posixpath.dirname(ncx.file_name) if ncx is not None else ""
    toc = ebook.toc if isinstance(ebook.toc, list | tuple) else [ebook.toc]  # NCX of one entry
    entries = []
    for label, href, depth in _toc_entries(toc, 1):
        document, fragment = urldefrag(href or "")
        readings = [posixpath.normpath(unquote(name))
                    for name in (document, posixpath.join(ncx_dir, document)) if document]
        name = next((n for n in readings if n in spine_names), readings[0] if readings else "")
        entries.append(_Entry(" ".join(label.split()), name, fragment or None, depth))
    return entries


def _toc_entries(toc, depth: int) -> Iterator[tuple[str, str | None, int]]:
    """(label, href or None, depth) of every navigation entry, depth first, in reading order."""
    for entry in toc:
        if isinstance(entry, tuple):  # (Section, children)
            section, children = entry
            yield section.title or "", getattr(section, "href", None), depth
            yield from _toc_entries(children, depth + 1)
        elif getattr(entry, "href", None):
            yield entry.title or "", entry.href, depth


def _matter_targets(ebook: epub.EpubBook, opf_dir: str,
                    entries: list[_Entry]) -> dict[tuple[str, str | None], str]:
    """{(document, fragment or None): matter type} from the EPUB 3 landmarks and the EPUB 2 guide.

    A whole document is taken for matter only when no navigation entry points inside it: a book in
    one file may well call that file its title page.
    """
    references = [(ref.get("type") or "", ref.get("href") or "") for ref in ebook.guide]
    nav = next((item for item in ebook.get_items() if isinstance(item, epub.EpubNav)), None)
    root = _parse_document(nav.content) if nav is not None else None
    if root is not None:
        nav_dir = posixpath.dirname(nav.file_name)
        for landmarks in (el for el in root.iter("{*}nav") if "landmarks" in _types(el)):
            for link in landmarks.iter("{*}a"):
                href = posixpath.join(nav_dir, link.get("href") or "")
                references += [(kind, href) for kind in _types(link)]
    split = {e.document for e in entries if e.fragment}
    targets = {}
    for kind, href in references:
        document, fragment = urldefrag(href)
        key = (posixpath.normpath(unquote(document)), fragment or None)
        whole_split_file = not fragment and key[0] in split
        if kind in MATTER_TYPES and document and not whole_split_file:
            targets[key] = kind
    return targets


# chapters --------------------------------------------------------------------------------------

def _drafts(documents: list[_Document], entries: list[_Entry]) -> list[_Draft]:
    """Blocks gathered into chapters: a new one at each navigation entry of the chosen depth.

    Blocks before the first entry, and all of a book without navigation, make a chapter per
    document. An entry with no text of its own (a part's heading, an entry with no link) gets an
    empty draft, just before its first child's.
    """
    blocks: list[_Block] = []
    owners: list[str] = []  # the document of each block
    positions: dict[tuple[str, str | None], int] = {}
    for document in documents:
        if document.blocks:
            positions[(document.name, None)] = len(blocks)
        for block in document.blocks:
            for i in block.ids:
                positions.setdefault((document.name, i), len(blocks))
            blocks.append(block)
            owners.append(document.name)

    placed = _placed(entries, positions)
    depth = _chapter_depth(placed, blocks)
    starts = sorted((position, number, entry) for number, (position, entry) in enumerate(placed)
                    if entry.depth <= depth)
    first = starts[0][0] if starts else len(blocks)
    drafts: list[_Draft] = []
    for i in range(first):  # before the first entry: a chapter per document
        if not drafts or owners[i] != owners[i - 1]:
            drafts.append(_Draft("", 0, owners[i]))
        drafts[-1].blocks.append(blocks[i])
    ends = [position for position, _, _ in starts[1:]] + [len(blocks)] if starts else []
    for (position, _, entry), end in zip(starts, ends, strict=True):
        drafts.append(_Draft(entry.label, entry.depth, owners[position], blocks[position:end]))
    return drafts


def _placed(entries: list[_Entry], positions: dict[tuple[str, str | None], int]) -> list[tuple[int, _Entry]]:
    """(block position, entry) of entries that find their place. An entry whose target has no text
    (a heading without a link, a picture page) takes its first child's place, if it has one."""
    placed = []
    for number, entry in enumerate(entries):
        position = positions.get((entry.document, entry.fragment))
        if position is None:
            following = next((e for e in entries[number + 1:]
                              if e.depth <= entry.depth or (e.document, e.fragment) in positions),
                             None)
            if following is None or following.depth <= entry.depth:
                continue  # no child with text: it names nothing
            position = positions[(following.document, following.fragment)]
        placed.append((position, entry))
    return placed


def _chapter_depth(placed: list[tuple[int, _Entry]], blocks: list[_Block]) -> int:
    """How deep in nested navigation chapters start: the deepest level whose chapters have a
    median of at least MIN_CHAPTER_WORDS (a play's scenes, a collection's stories; not the
    sections of a chapter), else the top level. Flat navigation has one level to choose from."""
    depths = sorted({entry.depth for _, entry in placed}, reverse=True)
    words = [count_words(block.text) for block in blocks]
    for depth in depths[:-1]:
        starts = sorted({position for position, entry in placed if entry.depth <= depth})
        lengths = [sum(words[start:end]) for start, end in zip(starts, starts[1:] + [len(blocks)],
                                                                strict=True)]
        if statistics.median(lengths) >= MIN_CHAPTER_WORDS:
            return depth
    return depths[-1] if depths else 1


def _chapters(drafts: list[_Draft]) -> tuple[Chapter, ...]:
    """Drafts with text as chapters, titled by nav label, else first heading, else "Chapter N".

    An entry with no text of its own ("Part One", "Act I") goes before its first child's title
    ("Part One: Chapter 1"). Leading headings that overlap the title are dropped: the title is
    spoken on its own.
    """
    chapters: list[Chapter] = []
    pending: list[tuple[int, str]] = []  # (depth, label) of entries with no text of their own
    for draft in drafts:
        number = len(chapters) + 1
        headings = [block.text for block in draft.blocks if block.heading]
        file_stem = posixpath.splitext(posixpath.basename(draft.document))[0]
        if draft.label and _key(draft.label) != _key(file_stem):
            title = draft.label
        else:  # no label, or one that only repeats the file name ("content 001")
            title = headings[0] if headings else f"Chapter {number}"
        parents = [label for depth, label in pending if depth < draft.depth]
        title = ": ".join([*parents, title])
        blocks = list(draft.blocks)
        while blocks and blocks[0].heading and _overlaps(blocks[0].text, title):
            blocks.pop(0)
        if blocks:
            paragraphs = tuple(Paragraph(block.text) for block in blocks)
            chapters.append(Chapter(index=number, title=title, paragraphs=paragraphs))
            pending = []
        elif draft.label:
            pending = [(d, label) for d, label in pending if d < draft.depth]
            pending.append((draft.depth, draft.label))
    return tuple(chapters)


def _overlaps(heading: str, title: str) -> bool:
    """Whether one says what the other says, word for word ("Loomings", "Chapter 1. Loomings")."""
    shorter, longer = sorted((_words(heading), _words(title)), key=len)
    return any(longer[i:i + len(shorter)] == shorter for i in range(len(longer) - len(shorter) + 1))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _key(text: str) -> str:
    """Letters and digits only, case-folded: for comparing titles and file names."""
    return "".join(c for c in text.casefold() if c.isalnum())


# metadata --------------------------------------------------------------------------------------

def _metadata(ebook: epub.EpubBook, name: str) -> list[tuple[str, dict]]:
    return ebook.metadata.get(epub.NAMESPACES["DC"], {}).get(name, [])


def _authors(ebook: epub.EpubBook) -> list[str]:
    """The creators who are authors: EPUB 2 marks illustrators, editors... with opf:role."""
    return [" ".join(value.split()) for value, attributes in _metadata(ebook, "creator")
            if value and value.strip()
            and attributes.get(f"{{{NS['opf']}}}role", AUTHOR_ROLE) == AUTHOR_ROLE]


def _cover(ebook: epub.EpubBook, warnings: list[str]) -> tuple[bytes | None, str]:
    """The cover picture and its type: the EPUB 3 cover-image item, else the one the EPUB 2
    `<meta name="cover">` names; (None, "") if there is none, or it is not a JPEG or PNG (warned)."""
    item = next(ebook.get_items_of_type(ebooklib.ITEM_COVER), None)
    if item is None:
        ids = [attributes.get("content") for _, attributes in ebook.get_metadata("OPF", "meta")
               if attributes.get("name") == "cover"]
        item = next((found for found in map(ebook.get_item_with_id, ids) if found is not None), None)
    content = item.get_content() if item is not None else b""
    if not content:
        return None, ""
    kind = picture_type(content)
    if not kind:
        warnings.append(f"the cover {item.file_name} is not a JPEG or PNG; the audio files get no cover")
        return None, ""
    return content, kind


def _first(ebook: epub.EpubBook, name: str) -> str:
    """The first non-empty Dublin Core `name` value, whitespace collapsed; "" if none."""
    values = (" ".join((value or "").split()) for value, _ in _metadata(ebook, name))
    return next((value for value in values if value), "")
