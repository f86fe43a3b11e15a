"""A policy rule's regular expression cannot freeze a worker, nor let a call through by running
out of time.

Replays finding 4 of issue 19 in a real worker process that hosts two turns: one streams a
story while the other's send_email call is judged by rules whose patterns backtrack on a
40-character hostile address. The first is the probe's own rule (Python's ``re`` froze every
turn of the worker on it, heartbeats too); the regex engine sees through its nested repeat. The
second defeats that engine as well and runs until its time limit (raised here so the window is
wide enough to look into), with the GIL released meanwhile. The story's stored text must grow
while the call is being judged, and the rule that ran out of time counts as matching: the
``deny`` holds.
"""

import pytest

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, Outcome, PolicyRule
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Turn
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

HOSTILE_TO = "a" * 28 + "@internal.co"
PROBE_PATTERN = r"^([a-zA-Z0-9]+\.?)+@internal\.com$"
# Two equal choices under a repeat: exponential on the regex engine too.
RUNAWAY_PATTERN = r"^(a|a)+@internal\.com$"
# Long enough for the story's checkpoints (every AGENT_CHECKPOINT_INTERVAL) to show.
JUDGING_TIME_LIMIT = "2"
BOUND = 60.0


def text_length(turn: Turn) -> int:
    event = turn.events.filter(kind=EventKind.ASSISTANT_MESSAGE).order_by("seq").first()
    return len(event.data["text"]) if event else 0


def judged(turn: Turn) -> bool:
    return turn.events.filter(kind=EventKind.TOOL_CALL).exists()


def lease_of(turn: Turn):
    return Turn.objects.values_list("lease_token", flat=True).get(pk=turn.pk)


def waiting_to_be_judged(turn: Turn) -> bool:
    """The model's tool call is checkpointed (the loop saves it just before judging it) and no
    verdict is recorded yet."""
    checkpoint = Turn.objects.values_list("checkpoint", flat=True).get(pk=turn.pk) or {}
    asked = any(message.get("tool_calls") for message in checkpoint.get("messages") or [])
    return asked and not judged(turn)


def test_another_turn_streams_while_a_backtracking_rule_is_judged_and_the_deny_holds(
    llm, user, worker_process, tmp_path
):
    def rule(name, position, pattern):
        return PolicyRule.objects.create(
            name=name,
            tool_name="send_email",
            position=position,
            field="to",
            operator="regex",
            value=pattern,
            outcome=Outcome.DENY,
        )

    rule("Internal look-alikes", 1, PROBE_PATTERN)
    runaway = rule("Runaway pattern", 2, RUNAWAY_PATTERN)
    mail_dir = tmp_path / "mail"
    llm.token_delay = 0.05
    worker_process(
        Q_WORKERS="1",
        POLICY_REGEX_TIMEOUT=JUDGING_TIME_LIMIT,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
    )
    story = lifecycle.turn_start(
        session=sessions.session_create(owner=user), message="tell me a story", actor=user
    )
    wait_for(lambda: text_length(story), timeout=BOUND)

    call = {"to": HOSTILE_TO, "subject": "Hi", "body": "Hello."}
    llm.reply(tool_call={"name": "send_email", "arguments": call})
    hostile = lifecycle.turn_start(
        session=sessions.session_create(owner=user), message="mail them", actor=user
    )
    wait_for(lambda: waiting_to_be_judged(hostile), timeout=BOUND)
    leases = (lease_of(story), lease_of(hostile))
    before = text_length(story)

    def still_judging() -> bool:
        """Still in the same run of both turns (a frozen worker loses its leases) and no
        verdict yet. Checked after each read of the text: the read came inside the window."""
        return (lease_of(story), lease_of(hostile)) == leases and not judged(hostile)

    assert still_judging(), "judged before the story's text could be read"

    def grew_while_judging() -> bool:
        grown = text_length(story) > before
        assert still_judging(), "the judging ended while the story's text stood still"
        return grown

    wait_for(grew_while_judging, timeout=BOUND)

    wait_for(lambda: Turn.objects.get(pk=hostile.pk).is_terminal, timeout=BOUND)
    hostile.refresh_from_db()
    assert hostile.status == TurnStatus.COMPLETED
    verdict = hostile.events.get(kind=EventKind.TOOL_CALL).data["policy"]
    assert verdict == {"rule": runaway.pk, "name": "Runaway pattern", "outcome": "deny"}
    result = hostile.events.get(kind=EventKind.TOOL_RESULT).data
    assert (result["ok"], result["result"]) == (
        False,
        'Refused by the policy rule "Runaway pattern": not allowed.',
    )
    assert not ApprovalRequest.objects.exists()
    assert not mail_dir.exists() or not any(mail_dir.iterdir())
    story.refresh_from_db()
    assert story.status == TurnStatus.RUNNING
    lifecycle.turn_request_cancel(session=story.session, actor=user)
    wait_for(lambda: Turn.objects.get(pk=story.pk).is_terminal, timeout=BOUND)
