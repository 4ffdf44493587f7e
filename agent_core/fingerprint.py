"""Configuration fingerprint: a client and a worker with different agents must not mix.

The manifest is a small dict of what must match (name, prompt, model, tools, policy, mode, limits),
each value a short digest or a plain setting, never a secret. The fingerprint is the digest of the
manifest. Activities compare it on entry; on a mismatch the worker sends its manifest back and the
workflow names the parts that differ.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable


def _digest(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def build_manifest(
    *, name: str, system_prompt: str, model_identity: str, tools: Iterable[Any], approval: str, mode: str,
    max_iterations: int, context_messages: int, context_chars: int = 100_000,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    manifest = {
        "name": name,
        "system_prompt": _digest(system_prompt),
        "model": model_identity,
        "approval": approval,
        "mode": mode,
        "max_iterations": str(max_iterations),
        "context_messages": str(context_messages),
        "context_chars": str(context_chars),
    }
    names = []
    for t in tools:
        manifest[f"tool:{t.name}"] = _digest(t.signature_text())
        names.append(t.name)
    manifest["tools"] = ",".join(sorted(names))
    manifest.update(extra or {})
    return manifest


def fingerprint_of(manifest: dict[str, str]) -> str:
    return _digest(json.dumps(manifest, sort_keys=True), 16)


def describe_mismatch(client: dict[str, str], worker: dict[str, str]) -> str:
    """A message naming what differs between the client's and the worker's configuration."""
    parts = []
    for key in sorted(set(client) | set(worker)):
        a, b = client.get(key), worker.get(key)
        if a == b:
            continue
        if key.startswith("tool:"):
            tool = key[5:]
            if a is None:
                parts.append(f"tool {tool!r} only on the worker")
            elif b is None:
                parts.append(f"tool {tool!r} only on the client")
            else:
                parts.append(f"tool {tool!r} has a different description or schema")
        elif key == "tools":
            continue  # reported tool by tool above
        elif key == "system_prompt":
            parts.append("the system prompt differs")
        else:
            parts.append(f"{key}: client {a!r}, worker {b!r}")
    detail = "; ".join(parts) or "the fingerprints differ"
    return (
        f"configuration mismatch between client and worker: {detail}. Redeploy the client and the "
        "workers with the same agent configuration (or turn the check off on the client with "
        "fingerprint_check=False)."
    )
