"""Regex conditions match the whole value now; the migration keeps what each existing rule
meant when patterns were searched for anywhere in the value."""

import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from approvals_app.conditions import matches
from approvals_app.models import PolicyRule

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

BEFORE = [("approvals_app", "0006_policy_rule_agent")]
PATTERNS = ["evil", r"(?i)EVIL\.com", r"^Invoice \d+$", "a|b"]
VALUES = ["spy@evil.com", "SPY@EVIL.COM", "Invoice 42", "Invoice 42 and more", "xbx", ""]


def test_it_keeps_each_regex_rules_meaning():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("approvals_app", "PolicyRule")
    for position, pattern in enumerate(PATTERNS):
        old.objects.create(
            name=pattern,
            tool_name="send_email",
            position=position,
            field="subject",
            operator="regex",
            value=pattern,
            outcome="deny",
        )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    for rule in PolicyRule.objects.order_by("position"):
        for value in VALUES:
            now = matches({"subject": value}, field="subject", operator="regex", value=rule.value)
            assert now is (re.search(rule.name, value) is not None), (rule.name, value)
    anchored = PolicyRule.objects.get(name=r"^Invoice \d+$")
    assert anchored.value == r"^Invoice \d+$"
