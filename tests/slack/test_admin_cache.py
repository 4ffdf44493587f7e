"""Who is a workspace admin is asked of Slack once per user and a few minutes, in a bounded map."""

from __future__ import annotations

from bots.slack.web import ADMIN_TTL, ADMIN_USERS, SlackWeb, make_client


async def test_admin_answers_are_cached_bounded_and_age(fake_slack):
    web = SlackWeb(make_client(fake_slack.token, fake_slack.base_url))
    fake_slack.users["UADMIN"] = {"id": "UADMIN", "is_admin": True}
    assert await web.is_workspace_admin("UADMIN")
    asked = fake_slack.count("users.info")
    assert await web.is_workspace_admin("UADMIN")
    assert not await web.is_workspace_admin("UOTHER")
    assert fake_slack.count("users.info") == asked + 1  # UADMIN came from the cache
    for i in range(ADMIN_USERS + 5):  # as many users as a large workspace has, and more
        web._admins[f"U{i}"] = False
    assert len(web._admins) == ADMIN_USERS
    assert web._admins.ttl == ADMIN_TTL  # rights change: an answer is trusted for minutes, not forever
