"""DURABOT_BUILD_ID and the derived build id: what a worker build is called."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from agent_core.errors import UserError
from agent_core.settings import Settings
from agent_core.versioning import WORKFLOW_MODULES, default_build_id
from temporalio.common import VersioningBehavior


def build(**env: str):
    return Settings.load(env=env, dotenv=None).build()


def test_unset_runs_unversioned_and_still_names_the_code():
    info = build(DURABOT_TASK_QUEUE="team.bot")
    assert not info.versioned and info.worker_config() is None
    assert re.fullmatch(re.escape(version("durabot")) + r"-[0-9a-f]{12}", info.build_id)
    assert info.deployment == "team-bot"  # "." separates deployment and build in a version's name


def test_auto_derives_the_id_from_the_workflow_code():
    info = build(DURABOT_BUILD_ID="auto")
    assert info.versioned and info.build_id == default_build_id()
    config = info.worker_config()
    assert config is not None and config.use_worker_versioning
    assert config.default_versioning_behavior is VersioningBehavior.PINNED
    assert "agent_core.workflow" in WORKFLOW_MODULES and "agent_core.activities" not in WORKFLOW_MODULES


def test_an_explicit_id_and_the_worker_controllers_variables():
    assert build(DURABOT_BUILD_ID="1.4.0").version.to_canonical_string() == "durabot.1.4.0"
    controller = build(TEMPORAL_WORKER_BUILD_ID="1.4.0-7f9c", TEMPORAL_DEPLOYMENT_NAME="prod/durabot")
    assert (controller.versioned, controller.build_id, controller.deployment) == (True, "1.4.0-7f9c", "prod/durabot")
    assert build(DURABOT_BUILD_ID="mine", TEMPORAL_WORKER_BUILD_ID="theirs").build_id == "mine"


@pytest.mark.parametrize("env,message", [
    ({"DURABOT_BUILD_ID": "1.4 beta"}, "contains whitespace"),
    ({"DURABOT_BUILD_ID": "x" * 300}, "longer than 255"),
    ({"DURABOT_BUILD_ID": "1", "TEMPORAL_DEPLOYMENT_NAME": "a.b"}, "contains '.'"),
])
def test_unusable_values_say_how_to_fix(env, message):
    with pytest.raises(UserError, match=message):
        build(**env)
