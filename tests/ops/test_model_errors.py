"""Model-server errors: chat gets what failed, the status and whether it is retried; the server's own
text goes to the log. The ApplicationError type and retry flags stay what Temporal needs."""

from __future__ import annotations

import logging

import pytest
from temporalio.exceptions import ApplicationError

from agent_core import OpenAIChatModel
from agent_core.errors import MODEL_ERROR
from agent_core.model import failure_kind
from workers.servers import free_port
from tests.fakes.openai_server import Reply

BODY = "quota of org-9f8e exceeded; request id req-5521"


async def _nothing(_: str) -> None:
    return None


async def _fail(model: OpenAIChatModel) -> ApplicationError:
    with pytest.raises(ApplicationError) as err:
        await model.complete([{"role": "user", "content": "hi"}], None, _nothing)
    return err.value


@pytest.mark.parametrize(("status", "hint", "retryable"), [
    (401, "unauthorised: check OPENAI_API_KEY", False),
    (404, "not found: check DURABOT_MODEL and OPENAI_BASE_URL", False),
    (429, "rate limited", True),
    (503, "server error", True),
])
async def test_status_errors_are_short_and_the_server_text_is_logged(model, fake_openai, caplog, status, hint,
                                                                     retryable):
    fake_openai.script = lambda body: Reply(status=status, error=BODY, headers={"Retry-After": "2"})
    with caplog.at_level(logging.WARNING, logger="agent_core.model"):
        err = await _fail(model)
    assert err.type == MODEL_ERROR and err.non_retryable is (not retryable)
    again = "retried automatically" if retryable else "not retried"
    assert err.message == (f"the model server answered HTTP {status} ({hint}; {again}); "
                           "the worker log has the server's full answer")
    if retryable:
        assert err.next_retry_delay is not None and err.next_retry_delay.total_seconds() == 2
    assert BODY in caplog.text and f"HTTP {status}" in caplog.text


async def test_an_unreachable_server_is_retryable_and_says_so():
    model = OpenAIChatModel("m", api_key="k", base_url=f"http://127.0.0.1:{free_port()}/v1")
    err = await _fail(model)
    assert err.type == MODEL_ERROR and not err.non_retryable
    assert err.message.startswith(
        "the model server is unreachable (APIConnectionError; retried automatically)")


# A failure's kind (for the llm_errors metric) travels in the error's details, never parsed back from
# its message: the message is for people and names no kind reliably.
@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit"), (408, "timeout"), (503, "server"),
                                              (401, "client"), (409, "client")])
async def test_a_status_error_carries_its_kind_and_status(model, fake_openai, status, kind):
    fake_openai.script = lambda body: Reply(status=status, error="no", headers={"Retry-After": "1"})
    err = await _fail(model)
    assert err.type == MODEL_ERROR
    assert err.details[0] == {"kind": kind, "status": status}
    assert failure_kind(err) == kind


async def test_an_unreachable_server_is_a_timeout():
    model = OpenAIChatModel("m", api_key="k", base_url=f"http://127.0.0.1:{free_port()}/v1")
    assert failure_kind(await _fail(model)) == "timeout"


def test_the_message_text_plays_no_part():
    assert failure_kind(ApplicationError("the model server answered HTTP 429", type=MODEL_ERROR)) == "other"
