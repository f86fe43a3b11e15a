"""A policy rule's condition: a small safe matcher on one argument, and its checks in the admin.

A condition compares canonical values and fails closed: what it cannot judge (a value of
another kind, a pattern that runs out of time) keeps an ``allow`` rule from applying and makes a
``deny`` or ``require_approval`` rule apply.
"""

import logging

import pytest
from django.core.exceptions import ValidationError

from approvals_app import policies
from approvals_app.conditions import Undecided, condition_problem, matches
from approvals_app.models import Outcome, PolicyRule

CALL = {
    "to": "Ops@example.com",
    "amount": 250,
    "flag": True,
    "subject": "Invoice 42",
    "tricky": "spy@evil.com (ann@example.com",
}
# Backtracks without end even on the regex engine (a repeated group of two equal choices), on
# a plain 40-character address.
# "example.com" in full-width letters.
FULL_WIDTH_EXAMPLE = "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"
RUNAWAY = r"^(a|a)+@internal\.com$"
HOSTILE_TO = "a" * 28 + "@internal.co"


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("", "", "", True),
        ("subject", "equals", "Invoice 42", True),
        ("subject", "equals", "invoice 42", False),
        ("amount", "equals", "250", True),
        ("flag", "equals", "true", True),
        ("to", "equals", "Ops@EXAMPLE.com", True),
        ("to", "equals", "ops@example.com", False),
        ("to", "one_of", "a@b.test\nOps@Example.com", True),
        ("to", "one_of", "a@b.test", False),
        ("subject", "regex", r"^Invoice \d+$", True),
        ("subject", "regex", r"Invoice \d+", True),
        ("subject", "regex", "Invoice", False),
        ("subject", "regex", r"\p{Lu}\w+ \d+", True),
        ("subject", "regex", r"^Receipt", False),
        ("to", "email_domain_in", "example.com\nother.test", True),
        ("to", "email_domain_in", "EXAMPLE.com", True),
        ("to", "email_domain_in", FULL_WIDTH_EXAMPLE, True),
        ("to", "email_domain_in", "mail.example.com", False),
        ("amount", "number_above", "100", True),
        ("amount", "number_above", "250", False),
        ("missing", "equals", "", False),
        ("missing", "email_domain_in", "example.com", False),
    ],
)
def test_it_matches_a_condition(field, operator, value, expected):
    assert matches(CALL, field=field, operator=operator, value=value) is expected


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("tricky", "email_domain_in", "example.com"),
        ("tricky", "email_domain_in", "evil.com"),
        ("subject", "email_domain_in", "example.com"),
        ("amount", "email_domain_in", "example.com"),
        ("amount", "regex", "250"),
        ("flag", "number_above", "0"),
        ("subject", "number_above", "1"),
    ],
)
def test_it_cannot_judge_a_value_of_another_kind(field, operator, value):
    with pytest.raises(Undecided) as undecided:
        matches(CALL, field=field, operator=operator, value=value)

    assert undecided.value.fault == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [("to", RUNAWAY), ("subject", ".*")],
    ids=["runaway pattern", "value over the length cap"],
)
def test_it_gives_up_on_a_pattern_that_runs_out_of_time(field, value):
    call = {"to": HOSTILE_TO, "subject": "x" * 1001}

    with pytest.raises(Undecided) as undecided:
        matches(call, field=field, operator="regex", value=value)

    assert undecided.value.fault


def test_it_judges_the_issues_backtracking_pattern_on_a_hostile_address():
    """Python's re needs hours for this; the regex engine sees through the nested repeat."""
    pattern = r"^([a-zA-Z0-9]+\.?)+@internal\.com$"
    hostile = "a" * 36 + "@i.co"

    assert matches({"to": hostile}, field="to", operator="regex", value=pattern) is False
    assert matches({"to": "ann.lee@internal.com"}, field="to", operator="regex", value=pattern)


def send_email_rule(outcome, **condition) -> PolicyRule:
    return PolicyRule.objects.create(
        name=f"{outcome} rule", tool_name="send_email", outcome=outcome, **condition
    )


def verdict_for(arguments) -> policies.Verdict:
    return policies.policy_verdict(
        tool_name="send_email", needs_approval=True, arguments=arguments, agent_id=None
    )


@pytest.fixture
def fresh_fault_log(monkeypatch):
    """Rule faults are logged once per process; each test starts with none logged."""
    monkeypatch.setattr(policies, "_faults_logged", set())


UNJUDGEABLE = {
    "runaway pattern": ({"field": "to", "operator": "regex", "value": RUNAWAY}, HOSTILE_TO),
    "pattern saved unchecked": ({"field": "to", "operator": "regex", "value": "("}, HOSTILE_TO),
    "domains saved unchecked": (
        {"field": "to", "operator": "email_domain_in", "value": "example.com\n*.evil.com"},
        "ann@example.com",
    ),
    "recipient that is no plain address": (
        {"field": "to", "operator": "email_domain_in", "value": "example.com"},
        "spy@evil.com (ann@example.com",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", UNJUDGEABLE.values(), ids=UNJUDGEABLE.keys())
@pytest.mark.parametrize("outcome", [Outcome.DENY, Outcome.REQUIRE_APPROVAL])
def test_a_restrictive_rule_applies_when_its_condition_cannot_tell(case, outcome, fresh_fault_log):
    condition, to = case
    restrictive = send_email_rule(outcome, position=1, **condition)
    send_email_rule(Outcome.ALLOW, position=2)

    verdict = verdict_for({"to": to, "subject": "s", "body": "b"})

    assert (verdict.rule_id, verdict.outcome) == (restrictive.pk, outcome)


@pytest.mark.django_db
@pytest.mark.parametrize("case", UNJUDGEABLE.values(), ids=UNJUDGEABLE.keys())
def test_an_allow_rule_does_not_apply_when_its_condition_cannot_tell(case, fresh_fault_log):
    condition, to = case
    send_email_rule(Outcome.ALLOW, **condition)

    verdict = verdict_for({"to": to, "subject": "s", "body": "b"})

    assert (verdict.rule_id, verdict.outcome) == (None, Outcome.REQUIRE_APPROVAL)


@pytest.mark.django_db
def test_it_logs_a_pattern_that_runs_out_of_time_once_per_rule(caplog, fresh_fault_log):
    first = send_email_rule(Outcome.DENY, field="to", operator="regex", value=RUNAWAY)
    first_id = first.pk
    call = {"to": HOSTILE_TO, "subject": "s", "body": "b"}

    with caplog.at_level(logging.WARNING, logger="approvals_app.policies"):
        verdicts = [verdict_for(call) for _ in range(3)]
        first.delete()
        second = send_email_rule(Outcome.DENY, field="to", operator="regex", value=RUNAWAY)
        verdicts.append(verdict_for(call))

    assert [v.rule_id for v in verdicts] == [first_id] * 3 + [second.pk]
    logged = [r.getMessage() for r in caplog.records if r.name == "approvals_app.policies"]
    assert len(logged) == 2
    assert all("ran out of time" in message for message in logged)
    assert not any(HOSTILE_TO in message for message in logged)


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("to", "", ""),
        ("", "equals", "x"),
        ("to", "regex", "(unclosed"),
        ("amount", "number_above", "many"),
        ("amount", "number_above", "nan"),
        ("to", "email_domain_in", "\n \n"),
        ("to", "email_domain_in", "example.com\n*.example.com"),
        ("to", "email_domain_in", "evil.com."),
        ("to", "regex", r"\p{Nope}"),
    ],
)
def test_it_refuses_a_condition_that_cannot_work(field, operator, value):
    assert condition_problem(field, operator, value)


def test_it_keeps_a_rules_domains_as_the_matcher_reads_them():
    rule = PolicyRule(
        name="Internal",
        tool_name="send_email",
        field="to",
        operator="email_domain_in",
        value=f" {FULL_WIDTH_EXAMPLE.upper()} \n\nBücher.de",
        outcome=Outcome.ALLOW,
    )

    rule.clean()

    assert rule.value == "example.com\nxn--bcher-kva.de"
    rule.value = "example.com\nexample..com"
    with pytest.raises(ValidationError, match=r'"example\.\.com" is not a domain name'):
        rule.clean()


@pytest.mark.django_db
def test_it_lets_only_superusers_edit_policies(client, approver, django_user_model):
    client.force_login(approver)
    assert client.get("/admin/approvals_app/policyrule/").status_code == 403

    admin = django_user_model.objects.create_superuser("root", password="root-password-1")
    client.force_login(admin)
    refused = client.post(
        "/admin/approvals_app/policyrule/add/",
        {
            "name": "Bad",
            "tool_name": "send_email",
            "position": 0,
            "field": "to",
            "operator": "regex",
            "value": "(",
            "outcome": "deny",
            "quorum": 1,
        },
    )
    assert refused.status_code == 200 and b"regular expression is not valid" in refused.content
    added = client.post(
        "/admin/approvals_app/policyrule/add/",
        {
            "name": "Blocked",
            "tool_name": "send_email",
            "position": 0,
            "field": "to",
            "operator": "email_domain_in",
            "value": "rival.test",
            "outcome": "deny",
            "quorum": 1,
        },
    )
    assert added.status_code == 302
    assert PolicyRule.objects.get().name == "Blocked"
