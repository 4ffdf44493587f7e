"""Files as the model reads them: a message's ``BlobRef``s become chat-completions content parts.

Runs in the LLM activity (it reads the blob store), never in workflow code. By kind:

- images (png, jpeg, gif, webp): an ``image_url`` part with a ``data:`` URI; bytes that are not the
  image their name claims are named to the model as unreadable instead;
- text (txt, md, csv, json, yaml, logs, source code): the text, cut past ``FileLimits.text_chars``
  with a marker saying how much there was;
- PDF: the text pypdf extracts (cut the same way); a PDF it cannot parse is named as unreadable;
- anything else: named to the model as an attachment it cannot read.

A blob the store no longer has is named too: a missing file never fails the turn.
"""

from __future__ import annotations

import base64
import io
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Iterable

from .types import BlobRef

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
TEXT_EXTENSIONS = frozenset({
    "txt", "text", "md", "markdown", "rst", "csv", "tsv", "json", "jsonl", "ndjson", "yaml", "yml", "toml",
    "ini", "cfg", "conf", "env", "log", "out", "err", "xml", "html", "htm", "css", "sql", "diff", "patch",
    "py", "js", "mjs", "ts", "tsx", "jsx", "go", "rs", "java", "kt", "kts", "c", "h", "cc", "cpp", "hpp", "cs",
    "rb", "php", "swift", "scala", "sh", "bash", "zsh", "ps1", "lua", "pl", "r", "m", "dart", "ex", "exs",
    "erl", "hs", "clj", "vue", "svelte", "tf", "proto", "graphql", "gradle", "dockerfile", "makefile",
})
_TEXT_TYPES = ("application/json", "application/x-yaml", "application/yaml", "application/xml",
               "application/x-sh", "application/javascript", "application/sql", "application/toml")
PDF_TYPE = "application/pdf"


@dataclass(frozen=True)
class FileLimits:
    """What a message's files may be: their size, their number, how much text the model reads."""

    max_bytes: int = 20 * 1024 * 1024
    max_files: int = 10
    text_chars: int = 50_000
    # Earlier thread files given to a conversation that starts inside a thread, in total.
    context_bytes: int = 40 * 1024 * 1024
    # Raw bytes of files one model request reads in full, newest first; older ones are named only.
    request_bytes: int = 40 * 1024 * 1024
    download_seconds: float = 60.0  # one download, connection to last byte


def media_type_of(name: str, declared: str | None = None) -> str:
    """The media type of a file: the platform's when it is specific, else guessed from the name."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in ("application/octet-stream", "binary/octet-stream"):
        return declared
    guessed, _ = mimetypes.guess_type(name)
    if guessed:
        return guessed
    if _extension(name) in TEXT_EXTENSIONS:
        return "text/plain"
    return declared or "application/octet-stream"


def _extension(name: str) -> str:
    path = PurePosixPath(name.lower())
    return path.suffix.lstrip(".") or path.name  # "Makefile", "Dockerfile"


def kind_of(ref: BlobRef) -> str:
    """image | text | pdf | other."""
    media = (ref.media_type or "").lower()
    if media in IMAGE_TYPES or (media == "image/jpg"):
        return "image"
    if media == PDF_TYPE or _extension(ref.name) == "pdf":
        return "pdf"
    if media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml")):
        return "text"
    if _extension(ref.name) in TEXT_EXTENSIONS:
        return "text"
    return "other"


def image_type(data: bytes) -> str | None:
    """The image type ``data`` really is (by its signature and header), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "image/png"
    if data.startswith(b"\xff\xd8\xff") and len(data) > 4:
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) > 13:
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) > 16:
        return "image/webp"
    return None


def describe(ref: BlobRef) -> str:
    return f"{ref.name} ({ref.media_type}, {human_size(ref.size)})"


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def cut_text(text: str, limit: int, name: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[{name} cut here: the model reads {limit} of its {len(text)} characters]"


def decode_text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def pdf_text(data: bytes) -> str:
    """The text of a PDF; raises ValueError when the PDF cannot be read."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ValueError(f"{type(exc).__name__}") from None
    return "\n\n".join(p.strip() for p in pages).strip()


async def file_parts(refs: Iterable[BlobRef], store: Any, limits: FileLimits) -> list[dict[str, Any]]:
    """The content parts the model gets for ``refs``, in order; never raises for a bad file."""
    from .blobs import BlobMissing

    parts: list[dict[str, Any]] = []
    for ref in refs:
        kind = kind_of(ref)
        if kind == "other":
            parts.append(_note(f"[attachment {describe(ref)} that cannot be read]"))
            continue
        try:
            data = await store.get(ref)
        except BlobMissing:
            parts.append(_note(f"[attachment {describe(ref)} is no longer available]"))
            continue
        if kind == "image":
            real = image_type(data)
            if real is None:
                parts.append(_note(f"[attachment {describe(ref)}: an image that cannot be read (corrupt or not "
                                   f"an image)]"))
                continue
            encoded = base64.b64encode(data).decode("ascii")
            parts.append(_note(f"[attachment {describe(ref)}: image follows]"))
            parts.append({"type": "image_url", "image_url": {"url": f"data:{real};base64,{encoded}"}})
        elif kind == "pdf":
            try:
                text = pdf_text(data)
            except ValueError as exc:
                parts.append(_note(f"[attachment {describe(ref)}: a PDF that cannot be read ({exc})]"))
                continue
            body = cut_text(text, limits.text_chars, ref.name) if text else "(no text: a scanned PDF?)"
            parts.append(_note(f"[attachment {describe(ref)}: its text follows]\n{body}"))
        else:
            body = cut_text(decode_text(data), limits.text_chars, ref.name)
            parts.append(_note(f"[attachment {describe(ref)} follows]\n{body}"))
    return parts


def _note(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


async def user_content(text: str, refs: Iterable[BlobRef], store: Any, limits: FileLimits) -> Any:
    """A user message's ``content``: its text, or text and file parts when it carries files."""
    refs = list(refs)
    if not refs:
        return text
    parts = [_note(text)] if text else []
    return parts + await file_parts(refs, store, limits)


def names_only(refs: Iterable[BlobRef]) -> str:
    """Files as a short text, where their contents are not wanted (an assistant's or a tool's files)."""
    return " ".join(f"[attached {describe(r)}]" for r in refs)
