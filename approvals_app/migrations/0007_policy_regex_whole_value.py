"""Regex conditions match the whole value now (they searched anywhere): each existing pattern
that was not already anchored at both ends is wrapped so that it keeps its meaning."""

import regex
from django.db import migrations, models

ANYWHERE = "(?s:.*?)(?:{})(?s:.*)"


def anchored(pattern: str) -> bool:
    return pattern.startswith("^") and pattern.endswith("$") and not pattern.endswith("\\$")


def match_anywhere_as_before(apps, schema_editor):
    PolicyRule = apps.get_model("approvals_app", "PolicyRule")
    for rule in PolicyRule.objects.filter(operator="regex"):
        if anchored(rule.value):
            continue
        wrapped = ANYWHERE.format(rule.value)
        try:
            regex.compile(wrapped)
        except regex.error:
            # A verbose pattern ending in a comment: wrapping would change it; left as it is.
            continue
        rule.value = wrapped
        rule.save(update_fields=["value"])


class Migration(migrations.Migration):
    dependencies = [
        ("approvals_app", "0006_policy_rule_agent"),
    ]

    operations = [
        migrations.AlterField(
            model_name="policyrule",
            name="operator",
            field=models.CharField(
                blank=True,
                choices=[
                    ("equals", "Equals"),
                    ("one_of", "one of (one value a line)"),
                    ("regex", "matches the regular expression (the whole value)"),
                    ("email_domain_in", "e-mail domain in (one domain a line)"),
                    ("number_above", "number above"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(match_anywhere_as_before, migrations.RunPython.noop),
    ]
