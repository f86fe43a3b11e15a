"""What a turn that the model failed looks like: ``failed`` with ``llm_error`` and one error notice
in plain words, with no exception text in it; and what a turn stopped while the model failed looks
like: ``stopped``, one interrupt notice and no error."""

import re

from agentproj.vocabulary import ErrorCode, EventKind, StopReason, TurnStatus


def assert_failed_with_one_readable_error(turn) -> None:
    assert turn.status == TurnStatus.FAILED
    assert turn.error_code == ErrorCode.LLM_ERROR
    assert turn.stop_reason == ""
    assert turn.lease_token is None
    errors = list(turn.events.filter(kind=EventKind.ERROR))
    assert len(errors) == 1
    assert errors[0].data["code"] == ErrorCode.LLM_ERROR
    text = errors[0].data["text"]
    assert re.fullmatch(r"[A-Z][^\n]*\.", text), text
    for leak in ("Traceback", "httpx", 'File "', "<", "Exception"):
        assert leak not in text
    assert not re.search(r"[A-Za-z]+Error\b", text), text
    assert not turn.events.filter(kind=EventKind.INTERRUPT).exists()


def assert_stopped_by_the_user_without_error(turn) -> None:
    turn.refresh_from_db()
    assert turn.status == TurnStatus.STOPPED
    assert turn.stop_reason == StopReason.USER_CANCEL
    assert turn.error_code == ""
    assert turn.events.filter(kind=EventKind.INTERRUPT).count() == 1
    assert not turn.events.filter(kind=EventKind.ERROR).exists()
