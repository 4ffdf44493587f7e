"""Platform settings live with their adapters: the SDK's settings know no chat platform, the process
composes them, and the variables, defaults and secrets stay what they were."""

from __future__ import annotations

import agent_core.settings as agent_settings
from workers.settings import ENV_VARS, Settings

PLATFORM_VARS = {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SLACK_API_URL",
                 "DISCORD_BOT_TOKEN", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL", "DISCORD_GUILD_ID"}


def test_the_sdk_settings_name_no_platform_and_the_process_reads_them_all():
    assert not [name for name in agent_settings.ENV_VARS if name.startswith(("SLACK_", "DISCORD_"))]
    assert PLATFORM_VARS <= set(ENV_VARS) and all(ENV_VARS[name] is None for name in PLATFORM_VARS)
    assert set(agent_settings.ENV_VARS) <= set(ENV_VARS)


def test_platform_parts_are_read_from_the_same_values_and_their_tokens_are_secrets():
    env = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "sig", "SLACK_API_URL": "http://slack.test/api/",
           "DISCORD_BOT_TOKEN": "dtok", "DISCORD_GUILD_ID": "42", "SLACK_APP_TOKEN": "",
           "DURABOT_TASK_QUEUE": "q"}
    s = Settings.load(env=env, dotenv=None)
    assert (s.slack.bot_token, s.slack.signing_secret, s.slack.app_token) == ("xoxb-1", "sig", None)
    assert (s.slack.api_url, s.discord.bot_token, s.discord.guild_id) == ("http://slack.test/api/", "dtok", "42")
    assert s.discord.api_base is None and s.task_queue == "q"
    assert {"xoxb-1", "sig", "dtok"} <= set(s.secrets())
    assert not any(secret in repr(s) for secret in ("xoxb-1", "sig", "dtok"))


def test_dotenv_values_reach_the_platform_parts(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DISCORD_BOT_TOKEN=from-file\nSLACK_BOT_TOKEN=from-file\n")
    s = Settings.load(env={"SLACK_BOT_TOKEN": "from-env"}, dotenv=str(dotenv))
    assert (s.slack.bot_token, s.discord.bot_token) == ("from-env", "from-file")
