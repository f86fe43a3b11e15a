"""The recipient a policy rule judges is the one the mail goes to.

Replays the probe of issue 19 against a real SMTP server on loopback: a ``(comment)`` after the
address once matched an ``allow`` rule for the company's domain while the mailer dropped it and
delivered to the other address; full-width letters slipped past a ``deny`` rule and were folded
back into the denied domain on delivery. Now a ``to`` that is not one plain address is an
invalid argument refused before any rule, and the canonical address is what rules, the
timeline, the mailer's ``RCPT TO`` and the tool's result all name.
"""

import pytest
from django.contrib.auth.models import Group

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalRequest, Outcome, PolicyRule
from sessions_app.core import lifecycle, sessions
from tests.smtp_sink import SmtpServer

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

# "spy@evil.com" with the domain in full-width letters.
FULL_WIDTH_EVIL = "spy@\uff45\uff56\uff49\uff4c.com"


@pytest.fixture
def smtp(settings):
    """Django's SMTP backend, pointed at a sink on loopback that keeps every envelope."""
    with SmtpServer() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = sink.host
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        yield sink


@pytest.fixture
def rules():
    """Mail to a rival never goes out, to the company without waiting, elsewhere after two
    approvals."""
    approvers = Group.objects.create(name="mail approvers")

    def rule(name, outcome, position, **condition):
        return PolicyRule.objects.create(
            name=name, tool_name="send_email", position=position, outcome=outcome, **condition
        )

    return {
        "rivals": rule(
            "Never to rivals",
            Outcome.DENY,
            1,
            field="to",
            operator="email_domain_in",
            value="evil.com",
        ),
        "internal": rule(
            "Internal mail",
            Outcome.ALLOW,
            2,
            field="to",
            operator="email_domain_in",
            value="example.com",
        ),
        "outside": rule(
            "Outside mail needs two", Outcome.REQUIRE_APPROVAL, 3, group=approvers, quorum=2
        ),
    }


@pytest.fixture
def model_mails(llm, user, run_turn_in_thread):
    """Runs a turn whose model calls send_email to ``to``, until it ends or parks."""

    def run(to: str):
        call = {"to": to, "subject": "Quarterly numbers", "body": "Attached."}
        llm.reply(tool_call={"name": "send_email", "arguments": call})
        session = sessions.session_create(owner=user)
        turn = lifecycle.turn_start(session=session, message="mail the numbers", actor=user)
        run_turn_in_thread(turn.pk).join()
        turn.refresh_from_db()
        return turn

    return run


def event_data(turn, kind) -> dict:
    return turn.events.get(kind=kind).data


@pytest.mark.parametrize(
    "to",
    ["spy@evil.com (ann@example.com", "boss@external.com (x@example.com"],
    ids=["allow rule", "two-approver rule"],
)
def test_a_comment_after_the_address_is_an_invalid_argument(to, model_mails, smtp, rules, llm):
    turn = model_mails(to)

    assert turn.status == TurnStatus.COMPLETED
    assert smtp.recipients() == []
    assert not ApprovalRequest.objects.exists()
    # Refused before any rule: no rule let it through, none was asked.
    assert "policy" not in event_data(turn, EventKind.TOOL_CALL)
    result = event_data(turn, EventKind.TOOL_RESULT)
    assert result["ok"] is False
    assert result["result"] == (
        "Invalid arguments for send_email: to must be one plain e-mail address such as "
        "name@example.com (no display name, comment, angle brackets, quotes, spaces or second "
        "address)"
    )
    assert llm.requests[1].body["messages"][-1]["content"] == result["result"]


def test_a_full_width_domain_is_judged_as_the_domain_it_folds_into(model_mails, smtp, rules):
    turn = model_mails(FULL_WIDTH_EVIL)

    assert turn.status == TurnStatus.COMPLETED
    assert smtp.recipients() == []
    assert not ApprovalRequest.objects.exists()
    call = event_data(turn, EventKind.TOOL_CALL)
    assert call["arguments"]["to"] == "spy@evil.com"
    assert call["policy"] == {
        "rule": rules["rivals"].pk,
        "name": "Never to rivals",
        "outcome": "deny",
    }
    result = event_data(turn, EventKind.TOOL_RESULT)
    assert (result["ok"], result["result"]) == (
        False,
        'Refused by the policy rule "Never to rivals": not allowed.',
    )


def test_the_address_judged_is_the_one_in_rcpt_to(model_mails, smtp, rules):
    turn = model_mails("ann@EXAMPLE.com")

    assert turn.status == TurnStatus.COMPLETED
    call = event_data(turn, EventKind.TOOL_CALL)
    assert call["policy"]["rule"] == rules["internal"].pk
    assert call["arguments"]["to"] == "ann@example.com"
    assert smtp.recipients() == [call["arguments"]["to"]]
    result = event_data(turn, EventKind.TOOL_RESULT)
    assert (result["ok"], result["result"]) == (True, "Email sent to ann@example.com.")
