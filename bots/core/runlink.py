"""Links from a reply to its run in the Temporal Web UI. Pure.

Every adapter offers one on a turn's final message when TEMPORAL_UI_URL is set, so whoever reads an
answer can open the run's history (its LLM rounds, tool calls, approvals and retries) in one click.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["LINK_LABEL", "run_url"]

LINK_LABEL = "View run in Temporal"


def run_url(ui_url: str | None, namespace: str, workflow_id: str, run_id: str = "") -> str | None:
    """The run's history page, or None when there is no UI address (or no workflow to show).

    A workflow id holds a ``/`` (``agent/conversation``): it is quoted whole, as the UI expects. Without
    a run id the link opens the workflow's latest run.
    """
    base = (ui_url or "").strip().rstrip("/")
    if not base or not workflow_id or not base.startswith(("http://", "https://")):
        return None
    url = f"{base}/namespaces/{quote(namespace, safe='')}/workflows/{quote(workflow_id, safe='')}"
    return f"{url}/{quote(run_id, safe='')}/history" if run_id else url
