"""EPUB 2 and 3 in, Book out, through ebooklib.

The archive is checked first with zipfile and lxml, so that each way a file can be broken gets
one plain BookError line; then ebooklib reads it, told where the package document is and made to
read past manifest items missing from the archive. Chapters follow the book's own navigation (the
EPUB 3 nav document, else the NCX); without one, each spine document with text is a chapter.
"""
from __future__ import annotations

import html.entities
import posixpath
import re
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

from renderer.book import Book, BookError, Chapter, Paragraph

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

BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "div", "dl", "dt",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
    "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "tfoot", "thead", "tr", "ul",
})
HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
SPACED_TAGS = frozenset({"br", "td", "th"})  # end a word, not a paragraph
SKIPPED_TAGS = frozenset({"head", "script", "style", "template", "rp", "rt"})
NOTE_TYPES = frozenset({"noteref", "footnote", "endnote", "rearnote", "pagebreak"})
NOTE_MARKER = re.compile(r"[\[(]?(?:\d{1,3}|[*†‡§¶]{1,3})[\])]?")  # "1", "[12]", "*"
UNRESOLVED_ENTITY = re.compile(r"&[A-Za-z][A-Za-z0-9]*;")  # left as text by the HTML fallback

# What ebooklib raises on a package it cannot make sense of, after the checks here passed.
EBOOKLIB_ERRORS = (epub.EpubException, KeyError, TypeError, AttributeError, IndexError,
                   ValueError, etree.LxmlError, zipfile.BadZipFile, zlib.error, EOFError)


@dataclass(frozen=True)
class _Block:
    """One paragraph-like block of a content document, and the ids that start in it."""

    text: str
    heading: bool
    ids: tuple[str, ...]


@dataclass
class _Draft:
    """A chapter being gathered: its navigation label ("" for none) and its blocks."""

    label: str
    document: str
    blocks: list[_Block] = field(default_factory=list)


def read_epub(path: Path) -> Book:
    """Read an EPUB 2 or 3 file into a Book, chapters in spine order.

    Title, author and language come from the package metadata. Book.warnings names what was
    skipped (missing spine documents, non-linear ones, unreadable navigation).
    Raises BookError, one line naming the file, for a file that is not a readable EPUB, is
    DRM-protected, or has no text.
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
    documents = list(_spine_documents(ebook, reader, warnings))
    drafts = _drafts(documents, _toc_targets(ebook, reader.opf_dir))
    chapters = _chapters(drafts)
    if not chapters:
        raise BookError(f"{path}: no readable text in the book's content documents")
    return Book(
        path=path,
        title=_first(ebook, "title") or path.stem,
        author=", ".join(_authors(ebook)),
        language=_first(ebook, "language"),
        chapters=chapters,
        warnings=tuple(warnings),
    )


def _check_archive(path: Path) -> str:
    """Check the ZIP, the container and the package document; refuse DRM.

    Returns the package document's path in the archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
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
    except zipfile.BadZipFile:
        raise BookError(f"{path}: not a ZIP archive, so not an EPUB") from None
    except (zlib.error, EOFError, NotImplementedError, ValueError) as error:
        raise BookError(f"{path}: damaged ZIP archive ({_one_line(str(error))})") from None


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
    unreadable navigation, and falling back to manifest order for a package without a spine."""

    def __init__(self, path: Path, opf_path: str):
        super().__init__(str(path), options={"ignore_ncx": False})
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
            ncx = next(self.book.get_items_of_type(ebooklib.ITEM_NAVIGATION), None)
            if ncx is not None:
                self._parse_ncx(ncx.content)
            return
        try:
            super()._load_spine()
        except (epub.EpubException, AttributeError):  # the spine names an NCX that is not there
            self.warnings.append("the NCX table of contents is missing")

    def _parse_ncx(self, data):
        try:
            super()._parse_ncx(data)
        except (AttributeError, IndexError, TypeError, ValueError, etree.LxmlError):
            self.warnings.append("the NCX table of contents is unreadable")
            self.book.toc = []

    def _parse_nav(self, data, base_path, navtype="toc"):
        try:
            super()._parse_nav(data, base_path, navtype=navtype)
        except (AttributeError, IndexError, TypeError, ValueError, etree.LxmlError):
            if navtype == "toc":
                self.warnings.append("the navigation document is unreadable")
                self.book.toc = []


def _spine_documents(ebook: epub.EpubBook, reader: _LenientReader,
                     warnings: list[str]) -> Iterator[tuple[str, list[_Block]]]:
    """(file name relative to the package, blocks) of each readable spine document, in order.

    The navigation document is skipped (its list of chapters is not read aloud), and so are
    non-linear documents (notes, pop-ups); skipped ones get a warning.
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
            warnings.append(f"spine document {archive_path} is missing from the archive; skipped")
        elif linear == "no":
            warnings.append(f"non-linear spine document {archive_path} skipped")
        elif item.media_type not in CONTENT_MEDIA_TYPES:
            warnings.append(f"spine item {archive_path} ({item.media_type}) is not text; skipped")
        elif not isinstance(item, epub.EpubNav):
            yield posixpath.normpath(item.file_name), _blocks(item.content)


def _blocks(content: bytes) -> list[_Block]:
    """The text blocks of one XHTML document, in order; [] for one that cannot be parsed."""
    root = _parse_document(content)
    if root is None:
        return []
    body = next((el for el in root.iter() if isinstance(el.tag, str) and _local(el.tag) == "body"),
                root)
    blocks: list[_Block] = []
    parts: list[str] = []
    ids: list[str] = []

    def flush(heading: bool = False) -> None:
        text = " ".join(UNRESOLVED_ENTITY.sub(" ", "".join(parts)).split())
        parts.clear()
        if text:
            blocks.append(_Block(text, heading, tuple(ids)))
            ids.clear()

    def walk(element: etree._Element) -> None:
        if not isinstance(element.tag, str):  # a comment, processing instruction or entity
            if element.tag is etree.Entity:
                parts.append(html.entities.html5.get(f"{element.name};", ""))
            parts.append(element.tail or "")
            return
        tag = _local(element.tag)
        if tag in SKIPPED_TAGS or _is_note(element, tag):
            parts.append(element.tail or "")
            return
        block = tag in BLOCK_TAGS
        if block:
            flush()
        if element.get("id"):
            ids.append(element.get("id"))
        spacer = " " if tag in SPACED_TAGS else ""
        parts.append(spacer + (element.text or ""))
        for child in element:
            walk(child)
        if block:
            flush(heading=tag in HEADING_TAGS)
        parts.append(spacer + (element.tail or ""))

    walk(body)
    flush()
    return blocks


def _parse_document(content: bytes) -> etree._Element | None:
    """Parse XHTML safely; non-well-formed documents (HTML entities, stray tags) go to lxml.html."""
    if not content or not content.strip():
        return None
    try:
        return etree.fromstring(content, _safe_xml_parser())
    except etree.XMLSyntaxError:
        try:
            return lxml.html.document_fromstring(content)
        except (etree.ParserError, ValueError):
            return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _is_note(element: etree._Element, tag: str) -> bool:
    """Whether an element is a footnote (reference, body) or page-break marker, not text."""
    types = (element.get(EPUB_TYPE) or element.get("epub:type") or "").split()
    roles = (element.get("role") or "").replace("doc-", "").split()
    if NOTE_TYPES.intersection(types + roles):
        return True
    if tag == "sup":  # "<sup>3</sup>" or "<sup><a href=...>...</a></sup>"
        only_link = (len(element) == 1 and _local(str(element[0].tag)) == "a"
                     and not (element.text or "").strip() and not (element[0].tail or "").strip())
        return only_link or _is_marker(element)
    return tag == "a" and "#" in element.get("href", "") and _is_marker(element)


def _is_marker(element: etree._Element) -> bool:
    return bool(NOTE_MARKER.fullmatch("".join(element.itertext()).strip()))


def _toc_targets(ebook: epub.EpubBook, opf_dir: str) -> dict[tuple[str, str | None], str]:
    """Navigation entries as {(file name relative to the package, fragment or None): label}.

    Nav-document hrefs arrive relative to the package; NCX ones relative to the NCX, so both
    readings are kept and the spine decides which one names a document.
    """
    ncx = next(ebook.get_items_of_type(ebooklib.ITEM_NAVIGATION), None)
    ncx_dir = posixpath.dirname(ncx.file_name) if ncx is not None else ""
    targets: dict[tuple[str, str | None], str] = {}
    toc = ebook.toc if isinstance(ebook.toc, list | tuple) else [ebook.toc]  # NCX of one entry
    for label, href in _toc_entries(toc):
        document, fragment = urldefrag(href)
        document = unquote(document)
        for name in (document, posixpath.join(ncx_dir, document)):
            key = (posixpath.normpath(name), fragment or None)
            targets.setdefault(key, " ".join(label.split()))
    return targets


def _toc_entries(toc) -> Iterator[tuple[str, str]]:
    """(label, href) of every navigation entry, depth first, in reading order."""
    for entry in toc:
        if isinstance(entry, tuple):  # (Section, children)
            section, children = entry
            if getattr(section, "href", None):
                yield section.title or "", section.href
            yield from _toc_entries(children)
        elif getattr(entry, "href", None):
            yield entry.title or "", entry.href


def _drafts(documents: list[tuple[str, list[_Block]]],
            targets: dict[tuple[str, str | None], str]) -> list[_Draft]:
    """Blocks gathered into chapters: a new one at each navigation target (a document, or an id
    inside one); before the first target, and in books without navigation, one per document."""
    drafts: list[_Draft] = []
    any_target = False

    def start(label: str, document: str) -> None:
        if drafts and not drafts[-1].blocks and drafts[-1].label:
            return  # two targets at one place: the first, outer entry names the chapter
        if drafts and not drafts[-1].blocks:
            drafts.pop()  # an earlier document with no text
        drafts.append(_Draft(label, document))

    for document, blocks in documents:
        label = targets.get((document, None))
        if label is not None or not any_target:
            start(label or "", document)
            any_target = any_target or label is not None
        for block in blocks:
            label = next((targets[(document, i)] for i in block.ids if (document, i) in targets),
                         None)
            if label is not None:
                start(label, document)
                any_target = True
            drafts[-1].blocks.append(block)
    return drafts


def _chapters(drafts: list[_Draft]) -> tuple[Chapter, ...]:
    """Drafts with text as chapters, titled by nav label, else first heading, else "Chapter N".

    Leading headings that overlap the title are dropped: the title is spoken on its own.
    """
    chapters: list[Chapter] = []
    for draft in drafts:
        number = len(chapters) + 1
        headings = [block.text for block in draft.blocks if block.heading]
        file_stem = posixpath.splitext(posixpath.basename(draft.document))[0]
        if draft.label and _key(draft.label) != _key(file_stem):
            title = draft.label
        else:  # no label, or one that only repeats the file name ("content 001")
            title = headings[0] if headings else f"Chapter {number}"
        blocks = list(draft.blocks)
        while blocks and blocks[0].heading and _overlaps(blocks[0].text, title):
            blocks.pop(0)
        if blocks:
            paragraphs = tuple(Paragraph(block.text) for block in blocks)
            chapters.append(Chapter(index=number, title=title, paragraphs=paragraphs))
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


def _metadata(ebook: epub.EpubBook, name: str) -> list[tuple[str, dict]]:
    return ebook.metadata.get(epub.NAMESPACES["DC"], {}).get(name, [])


def _authors(ebook: epub.EpubBook) -> list[str]:
    """The creators who are authors: EPUB 2 marks illustrators, editors... with opf:role."""
    return [" ".join(value.split()) for value, attributes in _metadata(ebook, "creator")
            if value and value.strip()
            and attributes.get(f"{{{NS['opf']}}}role", AUTHOR_ROLE) == AUTHOR_ROLE]


def _first(ebook: epub.EpubBook, name: str) -> str:
    """The first non-empty Dublin Core `name` value, whitespace collapsed; "" if none."""
    values = (" ".join((value or "").split()) for value, _ in _metadata(ebook, name))
    return next((value for value in values if value), "")
