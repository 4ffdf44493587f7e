"""Files out: what a turn's tools made goes into the thread after the answer's text, once.

The same for every platform: which files go (the platform's size and count limits), in which order,
the short notice about those that cannot go, and exactly-once across retries: an upload a retried
delivery finds already in the thread (the same name and size, posted by the bot after the turn's
message) is not made again. The platform's ``Uploader`` only does the I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from agent_core.attachments import human_size
from agent_core.blobs import BlobMissing, BlobStore
from agent_core.types import BlobRef, Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int  # one file
    max_files: int  # one turn


@dataclass
class UploadPlan:
    send: list[BlobRef] = field(default_factory=list)
    too_large: list[BlobRef] = field(default_factory=list)
    left_out: int = 0  # past the count limit


def plan_uploads(files: list[BlobRef], limits: UploadLimits) -> UploadPlan:
    """The files to upload, in the order the tools made them, within the platform's limits."""
    plan = UploadPlan()
    unique: list[BlobRef] = []
    for ref in files:  # a tool that returns the same file twice: one upload
        if all((r.sha256, r.name) != (ref.sha256, ref.name) for r in unique):
            unique.append(ref)
    for ref in unique:
        if ref.size > limits.max_bytes:
            plan.too_large.append(ref)
        elif len(plan.send) < limits.max_files:
            plan.send.append(ref)
        else:
            plan.left_out += 1
    return plan


def upload_notice(plan: UploadPlan, limits: UploadLimits, platform: str, missing: list[BlobRef]) -> str | None:
    """The short message about files that could not be attached (None: all went)."""
    lines = [f"{r.name} ({human_size(r.size)}) is too large to attach here ({platform} takes up to "
             f"{human_size(limits.max_bytes)})" for r in plan.too_large]
    lines += [f"{r.name} is no longer available to attach" for r in missing]
    if plan.left_out:
        lines.append(f"{plan.left_out} more file(s) left out: {platform} takes {limits.max_files} per answer")
    if not lines:
        return None
    return "\N{PAPERCLIP} " + "; ".join(lines) + "."


class Uploader(Protocol):
    """A platform's file I/O for one delivery; each method may be called again after a failure."""

    async def uploaded(self) -> set[tuple[str, int]]:
        """(name, size) of the files the bot already posted for this turn."""

    def shown_name(self, ref: BlobRef) -> str:
        """The name the platform shows for ``ref`` (some replace characters in file names)."""

    async def upload(self, ref: BlobRef, data: bytes) -> None: ...

    async def note(self, text: str) -> None:
        """Post the notice about files that could not go (idempotent on its own)."""


async def deliver_files(d: Delivery, blobs: BlobStore, uploader: Uploader, limits: UploadLimits,
                        platform: str) -> None:
    """Upload a finished turn's files after its text; skip those an earlier attempt uploaded."""
    if not d.files:
        return
    plan = plan_uploads(d.files, limits)
    done = await uploader.uploaded() if plan.send else set()
    missing: list[BlobRef] = []
    for ref in plan.send:
        if (uploader.shown_name(ref), ref.size) in done:
            continue
        try:
            data = await blobs.get(ref)
        except BlobMissing:
            log.warning("file %s of turn %s of %s is not in the blob store; not attached", ref.sha256[:12],
                        d.turn_id, d.conversation_id)
            missing.append(ref)
            continue
        await uploader.upload(ref, data)
    text = upload_notice(plan, limits, platform, missing)
    if text:
        await uploader.note(text)
