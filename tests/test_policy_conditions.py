"""A policy rule's condition: a small safe matcher on one argument, and its checks in the admin."""

import pytest

from approvals_app.conditions import condition_problem, matches
from approvals_app.models import PolicyRule

CALL = {"to": "Ops@Example.com", "amount": 250, "flag": True, "subject": "Invoice 42"}


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("", "", "", True),
        ("subject", "equals", "Invoice 42", True),
        ("subject", "equals", "invoice 42", False),
        ("amount", "equals", "250", True),
        ("to", "one_of", "a@b.test\nOps@Example.com", True),
        ("to", "one_of", "a@b.test", False),
        ("subject", "regex", r"^Invoice \d+$", True),
        ("subject", "regex", r"^Receipt", False),
        ("amount", "regex", "250", False),
        ("to", "email_domain_in", "example.com\nother.test", True),
        ("to", "email_domain_in", "mail.example.com", False),
        ("subject", "email_domain_in", "example.com", False),
        ("amount", "number_above", "100", True),
        ("amount", "number_above", "250", False),
        ("flag", "number_above", "0", False),
        ("subject", "number_above", "1", False),
        ("missing", "equals", "", False),
    ],
)
def test_it_matches_a_condition(field, operator, value, expected):
    assert matches(CALL, field=field, operator=operator, value=value) is expected


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("to", "", ""),
        ("", "equals", "x"),
        ("to", "regex", "(unclosed"),
        ("amount", "number_above", "many"),
        ("to", "email_domain_in", "\n \n"),
    ],
)
def test_it_refuses_a_condition_that_cannot_work(field, operator, value):
    assert condition_problem(field, operator, value)


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
