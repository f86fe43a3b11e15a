"""Policies as data: the first matching rule of a tool decides a call, else the tool's default."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from rest_framework.test import APIClient

from agentproj.vocabulary import EventKind, TurnStatus
from approvals_app.models import ApprovalStatus, Outcome, PolicyRule
from sessions_app.core import lifecycle, sessions
from sessions_app.models import Agent
from tests.turn_states import assert_error

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

COMPANY = "example.com"


@pytest.fixture
def ask(user, llm, outbox, run_turn_in_thread):
    """Runs a turn asking for ``message`` until it ends or parks; returns the turn."""

    def run(message: str, agent: Agent | None = None):
        session = sessions.session_create(owner=user, agent=agent)
        turn = lifecycle.turn_start(session=session, message=message, actor=user)
        run_turn_in_thread(turn.pk).join()
        turn.refresh_from_db()
        return turn

    return run


def rule(name, outcome, *, position=0, field="", operator="", value="", **needs):
    return PolicyRule.objects.create(
        name=name,
        tool_name="send_email",
        position=position,
        field=field,
        operator=operator,
        value=value,
        outcome=outcome,
        **needs,
    )


def on_duty(group, username):
    """A member of ``group`` who may approve, without an e-mail address: a rule whose group
    nobody could decide from would reject its requests at once."""
    person = User.objects.create_user(username, password=f"{username}-pw-1")
    person.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    person.groups.add(group)
    return person


def policy_of(turn):
    return turn.events.get(kind=EventKind.TOOL_CALL).data["policy"]


@pytest.fixture
def email_policy():
    """Mail to the company domain goes out, to a blocked domain never, elsewhere after two
    approvals by the mail approvers."""
    approvers = Group.objects.create(name="mail approvers")
    on_duty(approvers, "mia")
    rules = {
        "blocked": rule(
            "Never to competitors",
            Outcome.DENY,
            position=1,
            field="to",
            operator="email_domain_in",
            value="rival.test\nother-rival.test",
        ),
        "internal": rule(
            "Internal mail",
            Outcome.ALLOW,
            position=2,
            field="to",
            operator="email_domain_in",
            value=COMPANY,
        ),
        "outside": rule(
            "Outside mail needs two",
            Outcome.REQUIRE_APPROVAL,
            position=3,
            group=approvers,
            quorum=2,
            allow_self_approval=False,
        ),
    }
    return approvers, rules


def test_it_sends_mail_to_the_company_domain_without_waiting(ask, outbox, email_policy):
    _, rules = email_policy
    turn = ask("please send an email to ops@example.com")

    assert turn.status == TurnStatus.COMPLETED
    assert [m.to for m in outbox] == [["ops@example.com"]]
    assert not turn.approval_requests.exists()
    assert policy_of(turn) == {
        "rule": rules["internal"].pk,
        "name": "Internal mail",
        "outcome": "allow",
    }


def test_it_denies_mail_to_a_blocked_domain_naming_the_rule(ask, outbox, llm, email_policy):
    _, rules = email_policy
    turn = ask("please send an email to boss@rival.test")

    assert turn.status == TurnStatus.COMPLETED
    assert outbox == []
    assert not turn.approval_requests.exists()
    assert policy_of(turn)["rule"] == rules["blocked"].pk
    result = turn.events.get(kind=EventKind.TOOL_RESULT).data
    assert result["ok"] is False
    assert result["result"] == 'Refused by the policy rule "Never to competitors": not allowed.'
    assert llm.requests[-1].body["messages"][-1]["content"] == result["result"]


def test_it_makes_mail_elsewhere_wait_for_the_rules_approvers(
    ask, user, email_policy, django_user_model
):
    approvers, rules = email_policy
    turn = ask("please send an email to someone@elsewhere.test")

    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    approval = turn.approval_requests.get()
    assert (approval.approvals_needed, approval.allow_self_approval, approval.group) == (
        2,
        False,
        approvers,
    )
    requested = turn.events.get(kind=EventKind.APPROVAL_REQUESTED).data
    assert requested["policy"] == {
        "rule": rules["outside"].pk,
        "name": "Outside mail needs two",
        "outcome": "require_approval",
    }
    # An approver outside the rule's group may not decide; the requester may not approve.
    outsider = django_user_model.objects.create_user("olga", password="olga-pw-1")
    outsider.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    client = APIClient()
    client.force_authenticate(outsider)
    assert_error(client.post(f"/api/approvals/{approval.pk}/approve/"), 403, "not_eligible")
    user.user_permissions.add(Permission.objects.get(codename="decide_approvalrequest"))
    user.groups.add(approvers)
    client.force_authenticate(django_user_model.objects.get(pk=user.pk))
    assert_error(
        client.post(f"/api/approvals/{approval.pk}/approve/"),
        409,
        "self_approval_forbidden",
    )
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_it_takes_the_first_matching_rule_in_order(ask, outbox):
    rule("Everything waits", Outcome.REQUIRE_APPROVAL, position=1)
    rule(
        "Internal mail",
        Outcome.ALLOW,
        position=2,
        field="to",
        operator="regex",
        value=".*@example\\.com",
    )

    turn = ask("please send an email to ops@example.com")

    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert policy_of(turn)["name"] == "Everything waits"
    assert outbox == []


def test_it_skips_rules_whose_condition_does_not_match(ask, outbox):
    rule("Only the CEO", Outcome.DENY, field="to", operator="one_of", value="ceo@example.com")

    turn = ask("please send an email to ops@example.com")

    assert turn.status == TurnStatus.WAITING_FOR_APPROVAL
    assert policy_of(turn) == {
        "rule": None,
        "name": "the tool's default",
        "outcome": "require_approval",
    }


def test_it_applies_a_rule_naming_an_agent_profile_to_that_profiles_turns_only(ask, outbox):
    mailer = Agent.objects.create(name="Mailer", all_tools=True)
    rule("The mailer sends internal mail", Outcome.ALLOW, agent=mailer)

    by_mailer = ask("please send an email to ops@example.com", agent=mailer)
    by_default = ask("please send an email to ops@example.com")

    assert by_mailer.status == TurnStatus.COMPLETED
    assert policy_of(by_mailer)["name"] == "The mailer sends internal mail"
    assert by_default.status == TurnStatus.WAITING_FOR_APPROVAL
    assert policy_of(by_default)["name"] == "the tool's default"
    assert [message.to for message in outbox] == [["ops@example.com"]]


def test_it_applies_the_tools_declared_default_without_rules(ask, outbox):
    waits = ask("please send an email to ops@example.com")
    runs = ask("what time is it?")

    assert waits.status == TurnStatus.WAITING_FOR_APPROVAL
    assert policy_of(waits)["outcome"] == "require_approval"
    assert runs.status == TurnStatus.COMPLETED
    assert policy_of(runs) == {"rule": None, "name": "the tool's default", "outcome": "allow"}


def test_it_refuses_a_sub_agent_a_call_that_would_wait_for_a_person(ask):
    PolicyRule.objects.create(
        name="Clocks need a person", tool_name="get_time", outcome=Outcome.REQUIRE_APPROVAL
    )

    parent = ask("delegate what time is it")

    assert parent.status == TurnStatus.COMPLETED
    child = parent.children.get()
    assert child.status == TurnStatus.COMPLETED
    assert not child.approval_requests.exists()
    result = child.events.get(kind=EventKind.TOOL_RESULT).data
    assert (result["ok"], result["result"]) == (
        False,
        'Refused: the policy rule "Clocks need a person" requires a person\'s approval, '
        "which a sub-agent cannot wait for.",
    )
