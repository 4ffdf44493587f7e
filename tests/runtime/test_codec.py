"""The payload codec: conversations work through it, histories hold no plaintext, and histories
recorded before it still replay."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from agent_core import tool
from agent_core.codec import ENCRYPTED, ZLIB, CodecError, DurabotCodec, data_converter, parse_keys
from agent_core.errors import UserError
from agent_core.settings import Settings
from agent_core.worker import SANDBOXED_RUNNER
from agent_core.workflow import ConversationWorkflow
from tests.fakes.openai_server import Reply

HISTORIES = Path(__file__).parent.parent / "histories"
KEY = base64.b64encode(bytes(range(32))).decode()
OLD_KEY = bytes(range(100, 132)).hex()


@tool
async def lookup(code: str) -> str:
    """Look a code up."""
    return f"the vault code for {code} is TOOL-SECRET-7731"


def tool_script(body: dict) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Reply(text=f"answer: {last['content']}")
    return Reply(tool_calls=[("lookup", {"code": "zebra"})])


async def raw_history(temporal_server, agent, conversation_id: str) -> bytes:
    plain = await Client.connect(temporal_server.address)  # no codec: what the server stores
    history = await plain.get_workflow_handle(agent.workflow_id(conversation_id)).fetch_history()
    return b"".join(e.SerializeToString() for e in history.events)


async def test_encrypted_conversation_leaves_no_plaintext_in_history(
        make_agent, fake_openai, temporal_config, temporal_server):
    fake_openai.script = tool_script
    long_text = "USER-SECRET-4242 please look up the zebra " + "padding " * 2000  # compressed, then sealed
    agent = await make_agent(tools=[lookup], temporal=replace(temporal_config, secret_key=KEY))
    result = await agent.run(long_text, conversation_id="codec-sealed")
    assert result.text == "answer: the vault code for zebra is TOOL-SECRET-7731"
    assert fake_openai.requests[0]["messages"][-1]["content"] == long_text  # the model saw it whole
    again = await agent.run("short USER-SECRET-9 again", conversation_id="codec-sealed")
    assert again.text.startswith("answer:")
    raw = await raw_history(temporal_server, agent, "codec-sealed")
    for secret in (b"USER-SECRET-4242", b"USER-SECRET-9", b"TOOL-SECRET-7731", b"zebra"):
        assert secret not in raw
    assert ENCRYPTED in raw


async def test_without_a_key_large_payloads_are_compressed(make_agent, fake_openai, temporal_server):
    agent = await make_agent()
    text = "compress me " * 1000
    result = await agent.run(text, conversation_id="codec-zipped")
    assert result.text == f"echo: {text}"
    raw = await raw_history(temporal_server, agent, "codec-zipped")
    assert ZLIB in raw and b"compress me compress me" not in raw
    await agent.run("tiny", conversation_id="codec-zipped")
    assert b"tiny" in await raw_history(temporal_server, agent, "codec-zipped")  # small payloads stay as they are


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_histories_recorded_before_the_codec_replay_through_it(path: Path):
    history = WorkflowHistory.from_json("recorded", path.read_text())
    replayer = Replayer(workflows=[ConversationWorkflow], workflow_runner=SANDBOXED_RUNNER,
                        data_converter=data_converter(KEY))
    await replayer.replay_workflow(history)


async def test_key_rotation_and_wrong_keys():
    old = DurabotCodec.from_setting(f"old:{OLD_KEY}")
    sealed = await old.encode([Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')])
    assert sealed[0].metadata["encryption-key-id"] == b"old" and b"hello" not in sealed[0].data
    rotated = DurabotCodec.from_setting(f"new:{KEY},old:{OLD_KEY}")
    assert (await rotated.decode(sealed))[0].data == b'"hello"'
    assert (await rotated.encode(sealed))[0].metadata["encryption-key-id"] == b"new"
    with pytest.raises(CodecError, match="'old'"):
        await DurabotCodec.from_setting(KEY).decode(sealed)
    with pytest.raises(CodecError, match="not set"):
        await DurabotCodec().decode(sealed)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"as before"')
    assert (await rotated.decode([plain]))[0] == plain  # payloads from before the codec pass unchanged


def test_secret_key_formats():
    assert len(parse_keys(KEY)) == 1 and list(parse_keys(OLD_KEY).values()) == [bytes(range(100, 132))]
    assert list(parse_keys(f"a:{KEY}, b:{OLD_KEY}")) == ["a", "b"]
    for bad in ("tooshort", "zz" * 32, base64.b64encode(os.urandom(16)).decode(), f":{KEY}", f"a:{KEY},a:{KEY}"):
        with pytest.raises(UserError, match="DURABOT_SECRET_KEY"):
            Settings.load(env={"DURABOT_SECRET_KEY": bad}, dotenv=None)
    settings = Settings.load(env={"DURABOT_SECRET_KEY": KEY}, dotenv=None)
    assert settings.temporal_config().secret_key == KEY and KEY in settings.secrets()
    assert KEY not in repr(settings) and KEY not in repr(settings.temporal_config())


async def test_worker_process_and_client_share_the_key(temporal_server, fake_openai, task_queue, tmp_path):
    """`durabot worker` and a client built from the same settings talk through the encrypting codec;
    a client with another key cannot read the conversation and says why."""
    from tests.procs.harness import Proc, settings_for, worker_env
    from workers.app import build_agent

    def script(body: dict) -> Reply:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Reply(text=f"done: {last['content']}")
        return Reply(tool_calls=[("quick_step", {"name": "PROC-SECRET-55"})])

    fake_openai.script = script
    env = worker_env(temporal_server.address, task_queue, fake_openai.base_url, tmp_path, DURABOT_SECRET_KEY=KEY)
    worker = Proc(["worker"], env, tmp_path / "worker.log")
    agent = build_agent(settings_for(env), local_worker=False)
    try:
        worker.wait_for("polling task queue")
        await agent.start()
        result = await agent.run("run the step", conversation_id="codec-proc")
        assert result.text == "done: quick PROC-SECRET-55 done"
        raw = await raw_history(temporal_server, agent, "codec-proc")
        assert b"PROC-SECRET-55" not in raw and b"run the step" not in raw
        other = build_agent(settings_for({**env, "DURABOT_SECRET_KEY": OLD_KEY}), local_worker=False)
        await other.start()
        with pytest.raises(CodecError, match="does not hold"):
            await other.status("codec-proc")
        await other.close()
    finally:
        await agent.close()
        worker.stop()


async def test_incompressible_payloads_are_not_wrapped():
    noise = Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(20_000))
    assert (await DurabotCodec().encode([noise]))[0] == noise
    text = Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"ab" * 5_000 + b'"')
    packed = (await DurabotCodec().encode([text]))[0]
    assert packed.metadata["encoding"] == ZLIB and (await DurabotCodec().decode([packed]))[0] == text
