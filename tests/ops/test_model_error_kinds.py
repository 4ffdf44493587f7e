"""A model failure's kind (for the llm_errors metric) travels in the error's details, never parsed back
from its message: the message is for people and names no kind reliably."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from agent_core import OpenAIChatModel
from agent_core.contract import ErrorType
from agent_core.model import failure_kind
from agent_core.servers import free_port
from tests.fakes.openai_server import Reply


async def _nothing(_: str) -> None:
    return None


async def _fail(model: OpenAIChatModel) -> ApplicationError:
    with pytest.raises(ApplicationError) as err:
        await model.complete([{"role": "user", "content": "hi"}], None, _nothing)
    return err.value


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit"), (408, "timeout"), (503, "server"),
                                              (401, "client"), (409, "client")])
async def test_a_status_error_carries_its_kind_and_status(model, fake_openai, status, kind):
    fake_openai.script = lambda body: Reply(status=status, error="no", headers={"Retry-After": "1"})
    err = await _fail(model)
    assert err.type == ErrorType.MODEL.value
    assert err.details[0] == {"kind": kind, "status": status}
    assert failure_kind(err) == kind


async def test_an_unreachable_server_is_a_timeout():
    model = OpenAIChatModel("m", api_key="k", base_url=f"http://127.0.0.1:{free_port()}/v1")
    assert failure_kind(await _fail(model)) == "timeout"


def test_the_message_text_plays_no_part():
    assert failure_kind(ApplicationError("the model server answered HTTP 429", type=ErrorType.MODEL.value)) == "other"
