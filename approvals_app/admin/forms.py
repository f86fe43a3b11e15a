"""The approval queue's forms: an approval from a request's page (the arguments to run, edited
or not, and a grant) and a rejection's reason, with the API's rules."""

import json

from django import forms
from django.core.exceptions import ValidationError

from agentproj.forms import BoundedJSONField
from agentproj.validators import human_text, plain_text_with_content
from agentproj.vocabulary import DECISION_REASON_MAX_LENGTH
from approvals_app.models import ApprovalRequest

ARGUMENTS_NOT_AN_OBJECT = "Give the arguments as a JSON object: names and values in braces."


def reason_field(*, required: bool, **kwargs) -> forms.CharField:
    """The reason's rules are the API's (``DecisionInSerializer``), judged on the text as sent;
    a required reason must say something."""
    return forms.CharField(
        required=required,
        max_length=DECISION_REASON_MAX_LENGTH,
        strip=False,
        validators=[plain_text_with_content, human_text] if required else [human_text],
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        **kwargs,
    )


class ArgumentsField(BoundedJSONField):
    """A tool call's arguments: a JSON object, shown indented to be edited by hand."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and not isinstance(value, dict):
            raise ValidationError(ARGUMENTS_NOT_AN_OBJECT)
        return value


class ApproveForm(forms.Form):
    """An approval from the change page: the arguments to run (edited or not), and optionally
    for the rest of the session. A request that needs several approvers offers no grant."""

    arguments = ArgumentsField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 60, "class": "approval-arguments-editor"}),
        help_text=(
            "The call runs with these. Edit them to approve it with other arguments: they are "
            "checked against the tool's schema and judged again by the policy (a stricter rule "
            "may need other approvers). Left empty, the call runs as it stands."
        ),
    )
    grant = forms.BooleanField(
        required=False,
        label="Approve for this session",
        help_text="Later calls of this tool in this session run without waiting, until revoked.",
    )
    grant_match = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only when these arguments are the same",
    )
    reason = reason_field(required=False)

    def __init__(self, *args, approval: ApprovalRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.approval = approval
        self.fields["arguments"].initial = approval.arguments_to_run
        self.offers_grant = approval.approvals_needed == 1
        if self.offers_grant:
            self.fields["grant_match"].choices = [
                (name, name) for name in sorted(approval.arguments_to_run)
            ]
        else:
            del self.fields["grant"], self.fields["grant_match"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("grant_match") and not cleaned.get("grant"):
            self.add_error(
                "grant_match", "Tick “Approve for this session” to approve later calls too."
            )
        return cleaned

    def arguments_to_approve(self) -> dict | None:
        """The arguments to approve when they differ from the ones that stand (None: as is)."""
        arguments = self.cleaned_data["arguments"]
        return None if arguments in (None, self.approval.arguments_to_run) else arguments

    def grant_to_make(self) -> list[str] | None:
        """The argument names a grant matches on; None when the approval makes no grant."""
        return self.cleaned_data["grant_match"] if self.cleaned_data.get("grant") else None


class RejectForm(forms.Form):
    reason = reason_field(
        required=True, help_text="The model is told who rejected the call and why."
    )
