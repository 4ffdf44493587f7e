"""Files in: a chat message's files are downloaded at once, within limits, into the blob store.

The same for every platform: the platform's ingress lists a message's files as ``RemoteFile``s (its
download URL and the headers it needs) and gets back references for the workflow, plus what went
wrong in words for the thread ("report.pdf is 25.0 MB, over the 20 MB limit"). A bad file never
stops the message: the rest of it (its text, the other files) still goes through.

Limits: ``FileLimits.max_files`` per message (the rest are named in the notice) and
``FileLimits.max_bytes`` per file, checked against the size the platform announces and again while
the bytes stream in (an announced size can be wrong). A download that fails (401/403/404, a timeout,
an HTML page where a file was expected: Slack's sign-in page when the token lacks ``files:read``)
is named in the notice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import Iterable

import aiohttp

from agent_core.attachments import FileLimits, human_size, media_type_of
from agent_core.blobs import BlobStore
from agent_core.limits import NAME_CHARS
from agent_core.types import BlobRef, ChatMessage

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
CONTEXT_WAIT = 20.0  # seconds for all earlier-thread files of a conversation that starts in a thread


@dataclass(frozen=True)
class RemoteFile:
    """One file of a chat message, as its platform describes it."""

    name: str
    url: str | None  # None: the platform gave no download link (a deleted or external file)
    size: int | None = None  # as announced
    media_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # credentials: never logged
    html_ok: bool = False  # an HTML answer is the file itself (an .html file), not a sign-in page


@dataclass
class Received:
    refs: list[BlobRef] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one sentence per file that was not read


class DownloadRefused(Exception):
    """A file not read, with the sentence the thread is told."""


def notice(problems: list[str]) -> str | None:
    """The short message a thread gets about files that were not read (None: nothing to say)."""
    if not problems:
        return None
    if len(problems) == 1:
        return f"\N{WARNING SIGN} {problems[0]}; the rest of your message went through."
    lines = "\n".join(f"\N{BULLET} {p}" for p in problems)
    return f"\N{WARNING SIGN} Not every file could be read:\n{lines}\nThe rest of your message went through."


def _mb(limit: int) -> str:
    mb = limit / (1024 * 1024)
    return f"{mb:.0f} MB" if mb == int(mb) else f"{mb:.1f} MB"


class FileFetcher:
    """Downloads files into the blob store; one per adapter process (it keeps one HTTP session)."""

    def __init__(self, blobs: BlobStore, limits: FileLimits) -> None:
        self.blobs = blobs
        self.limits = limits
        self.timeout = limits.download_seconds
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def fetch_all(self, files: Iterable[RemoteFile]) -> Received:
        """A message's files: the first ``max_files`` read, in order; problems in words."""
        files = list(files)
        out = Received()
        taken = files[:self.limits.max_files]
        if len(files) > len(taken):
            out.problems.append(f"too many files: {len(files)}, the first {len(taken)} were read")
        results = await asyncio.gather(*(self._fetch_one(f) for f in taken))
        for f, result in zip(taken, results):
            if isinstance(result, BlobRef):
                out.refs.append(result)
            else:
                out.problems.append(result)
        # The notice lists the files in message order, the count of the rest at its end.
        out.problems.sort(key=lambda p: p.startswith("too many files"))
        return out

    async def _fetch_one(self, f: RemoteFile) -> BlobRef | str:
        try:
            return await self.fetch(f)
        except DownloadRefused as exc:
            return str(exc)

    async def fetch(self, f: RemoteFile) -> BlobRef:
        """One file into the blob store; raises ``DownloadRefused`` with the sentence to say."""
        name = (f.name or "file")[:NAME_CHARS]
        limit = self.limits.max_bytes
        if f.size is not None and f.size > limit:
            raise DownloadRefused(f"{name} is {human_size(f.size)}, over the {_mb(limit)} limit")
        if not f.url:
            raise DownloadRefused(f"could not download {name} (no download link was given)")
        try:
            async with self._http().get(f.url, headers=f.headers, allow_redirects=True) as resp:
                if resp.status != 200:
                    log.info("download of a %s file answered HTTP %s", media_type_of(name, f.media_type), resp.status)
                    raise DownloadRefused(f"could not download {name} ({resp.status})")
                answered = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if answered == "text/html" and not f.html_ok:
                    raise DownloadRefused(f"could not download {name} (a sign-in page came instead of the file)")
                if resp.content_length is not None and resp.content_length > limit:
                    raise DownloadRefused(f"{name} is {human_size(resp.content_length)}, over the {_mb(limit)} limit")
                chunks: list[bytes] = []
                got = 0
                async for chunk in resp.content.iter_chunked(CHUNK):
                    got += len(chunk)
                    if got > limit:
                        raise DownloadRefused(f"{name} is over the {_mb(limit)} limit")
                    chunks.append(chunk)
        except (asyncio.TimeoutError, TimeoutError):
            raise DownloadRefused(f"could not download {name} (timed out)") from None
        except aiohttp.ClientError as exc:
            log.info("download failed: %s", type(exc).__name__)
            raise DownloadRefused(f"could not download {name} ({type(exc).__name__})") from None
        data = b"".join(chunks)
        return await self.blobs.put(data, name, media_type_of(name, f.media_type or answered))

    async def context_files(self, messages: list[tuple[ChatMessage, list[RemoteFile]]]) -> list[ChatMessage]:
        """Earlier thread messages with their files read, newest first within ``limits.context_bytes``
        and ``CONTEXT_WAIT``; files past the budget (or that fail) are named in the message instead."""
        left = self.limits.context_bytes
        out: list[ChatMessage] = [m for m, _ in messages]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONTEXT_WAIT
        for i in range(len(messages) - 1, -1, -1):
            msg, files = messages[i]
            refs: list[BlobRef] = []
            skipped: list[str] = []
            for f in files[:self.limits.max_files]:
                if (f.size or 0) > left or loop.time() >= deadline:
                    skipped.append(f.name)
                    continue
                try:
                    ref = await asyncio.wait_for(self.fetch(f), max(0.1, deadline - loop.time()))
                except (DownloadRefused, asyncio.TimeoutError) as exc:
                    log.info("an earlier thread file was not read: %s", exc or "timed out")
                    skipped.append(f.name)
                    continue
                left -= ref.size
                refs.append(ref)
            if refs or skipped:
                note = "".join(f"\n[file {n} not read]" for n in skipped)
                out[i] = replace(msg, content=(msg.content or "") + note, attachments=refs)
        return out
