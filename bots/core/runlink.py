"""Links from a reply to its run in the Temporal Web UI. Pure.

Every adapter offers one on a turn's final message when TEMPORAL_UI_URL is set, so whoever reads an
answer can open the run's history (its LLM rounds, tool calls, approvals and retries) in one click.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

from agent_core.types import Delivery

__all__ = ["LINK_LABEL", "RunLinks", "run_url"]

log = logging.getLogger(__name__)

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


class RunLinks:
    """A delivery's run link, for an adapter: ``links(d)`` is the run's page, or None without
    TEMPORAL_UI_URL. ``namespace`` is read at each call (the agent's client connects after start)."""

    def __init__(self, ui_url: str | None, namespace: Callable[[], str]) -> None:
        self.ui_url = ui_url
        self.namespace = namespace
        if ui_url and run_url(ui_url, "default", "w") is None:
            log.warning("TEMPORAL_UI_URL=%r is not an http(s) address; answers carry no link to their run", ui_url)

    def __call__(self, d: Delivery) -> str | None:
        if not self.ui_url:
            return None
        return run_url(self.ui_url, self.namespace(), d.workflow_id, d.run_id)
