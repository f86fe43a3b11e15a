from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from approvals_app.conditions import Operator, condition_problem, normalised_domains


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ApprovalRequest(models.Model):
    turn = models.ForeignKey(
        "sessions_app.Turn", on_delete=models.CASCADE, related_name="approval_requests"
    )
    tool_call_id = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=100)
    # As the model asked for them; an approver's edit goes to edited_arguments.
    arguments = models.JSONField(default=dict)
    edited_arguments = models.JSONField(null=True, blank=True)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The hash of the arguments the call runs with (edited if edited): what approvers approve.
    arguments_hash = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # Distinct approvers whose approval releases the call; any one rejection rejects it.
    approvals_needed = models.PositiveSmallIntegerField(default=1)
    # Four-eyes when False: the session's owner, who asked for the call, may not approve it.
    allow_self_approval = models.BooleanField(default=True)
    # Only its members may decide; null: any approver.
    group = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    expires_at = models.DateTimeField()
    # The policy rule that asked for the approval (of the edited call, once an edit is judged):
    # named to the model when nobody can decide the request, and in its receipt.
    rule_name = models.CharField(max_length=200, blank=True)
    # From the rule, kept with the request so that editing the rule later changes no waiting
    # request: still pending at escalate_at, the request is escalated once (escalated_at) and
    # members of escalate_to may decide it too.
    escalate_to = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    escalate_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    # Set once, by the one worker that claims the approved call; the claim makes it run once.
    executed_at = models.DateTimeField(null=True, blank=True)
    # The Slack message that asks for a decision (approvals_app/integrations/slack.py), so that
    # every later decision updates it; blank until it is posted.
    slack_channel = models.CharField(max_length=64, blank=True, editable=False)
    slack_ts = models.CharField(max_length=32, blank=True, editable=False)
    # The SHA-256 of the tool result text the model received, recorded with the result: with it
    # the call has run and its receipt can be given.
    result_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("decide_approvalrequest", "Can approve or reject tool calls")]
        constraints = [
            models.UniqueConstraint(fields=["turn", "tool_call_id"], name="approval_per_call"),
            models.CheckConstraint(
                condition=Q(status__in=ApprovalStatus.values), name="approval_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(approvals_needed__gte=1), name="approval_needs_an_approver"
            ),
            models.CheckConstraint(
                condition=Q(escalate_to__isnull=True, escalate_at__isnull=True)
                | Q(escalate_to__isnull=False, escalate_at__isnull=False),
                name="approval_escalation_complete",
            ),
        ]

    def __str__(self):
        return f"{self.tool_name} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == ApprovalStatus.PENDING

    def deciding_group_ids(self, *, ever: bool = False) -> list[int]:
        """The groups whose members may decide the request (empty: any approver): its group, and
        once escalated (or, with ``ever``, at any time it may yet be) the escalation group."""
        if not self.group_id:
            return []
        escalated = self.escalate_to_id and (ever or self.escalated_at is not None)
        return [self.group_id, self.escalate_to_id] if escalated else [self.group_id]

    @property
    def arguments_to_run(self) -> dict:
        return self.arguments if self.edited_arguments is None else self.edited_arguments

    @property
    def approvals_given(self) -> int:
        """Distinct approvals of the arguments as they stand: an edit makes earlier approvals,
        given to other arguments, stop counting."""
        return sum(
            d.decision == Decision.APPROVE and d.arguments_hash == self.arguments_hash
            for d in self.decisions.all()
        )


class Decision(models.TextChoices):
    APPROVE = "approve"
    REJECT = "reject"


class ApprovalDecision(models.Model):
    """One approver's say on a request: a quorum counts these, one per person."""

    approval = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="decisions"
    )
    approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision = models.CharField(max_length=8, choices=Decision.choices)
    # The arguments the approver approved (blank for a rejection); with edited_arguments set
    # when this decision changed them.
    arguments_hash = models.CharField(max_length=64, blank=True)
    edited_arguments = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["approval", "approver"], name="one_decision_per_approver"
            ),
            models.CheckConstraint(
                condition=Q(decision__in=Decision.values), name="decision_valid"
            ),
        ]

    def __str__(self):
        return f"{self.approver} {self.decision}s {self.approval}"


class Outcome(models.TextChoices):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVAL = "require_approval"


class PolicyRule(models.Model):
    """One rule of a tool's policy: the first rule whose condition matches a call decides it.

    A rule without a condition matches every call of its tool. Conditions are data compared by
    ``approvals_app.conditions``, never code.
    """

    name = models.CharField(max_length=200, help_text="Named in the timeline and to the model.")
    tool_name = models.CharField(max_length=100)
    agent = models.ForeignKey(
        "sessions_app.Agent",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The agent profile whose turns this rule decides; blank: every profile's.",
    )
    position = models.PositiveIntegerField(default=0, help_text="Lower positions are tried first.")
    field = models.CharField(
        max_length=100, blank=True, help_text="The argument to test; blank matches every call."
    )
    operator = models.CharField(max_length=16, choices=Operator.choices, blank=True)
    value = models.TextField(blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    group = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who may decide (require_approval); blank: any approver.",
    )
    quorum = models.PositiveSmallIntegerField(
        default=1, help_text="Distinct approvers needed (require_approval)."
    )
    allow_self_approval = models.BooleanField(
        default=True, help_text="Whether the person who asked may approve (require_approval)."
    )
    escalate_after = models.DurationField(
        null=True,
        blank=True,
        help_text="Still pending this long after it was made, a request is escalated: the "
        "escalation group is told and may decide it too (require_approval).",
    )
    escalate_to = models.ForeignKey(
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The group asked when the request is escalated (with its delay).",
    )

    class Meta:
        ordering = ["tool_name", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="rule_outcome"),
            models.CheckConstraint(
                condition=Q(field="", operator="")
                | (~Q(field="") & Q(operator__in=Operator.values)),
                name="rule_condition_complete",
            ),
            models.CheckConstraint(condition=Q(quorum__gte=1), name="rule_quorum"),
            models.CheckConstraint(
                condition=Q(escalate_after__isnull=True, escalate_to__isnull=True)
                | Q(
                    escalate_after__isnull=False,
                    escalate_to__isnull=False,
                    outcome=Outcome.REQUIRE_APPROVAL,
                ),
                name="rule_escalation_complete",
            ),
        ]

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    def clean(self):
        problem = condition_problem(self.field, self.operator, self.value)
        if problem:
            raise ValidationError(problem)
        self._clean_escalation()
        if self.operator == Operator.EMAIL_DOMAIN_IN:
            # Kept as the matcher reads it, so the admin shows what calls are compared with.
            self.value = "\n".join(normalised_domains(self.value))

    def _clean_escalation(self):
        if self.escalate_after is None and self.escalate_to_id is None:
            return
        if self.outcome != Outcome.REQUIRE_APPROVAL:
            raise ValidationError(
                {"escalate_to": "Only a rule that requires approval can escalate its requests."}
            )
        if self.escalate_after is None:
            raise ValidationError({"escalate_after": "Say after how long to escalate."})
        if self.escalate_to_id is None:
            raise ValidationError({"escalate_to": "Say which group to escalate to."})
        if self.escalate_to_id == self.group_id:
            raise ValidationError({"escalate_to": "Escalate to another group than the rule's."})
        if self.escalate_after <= timedelta(0):
            raise ValidationError({"escalate_after": "Give a delay longer than zero."})


class SessionGrant(models.Model):
    """An approver's "approve for the rest of this session": later calls of the tool in the
    session whose arguments equal ``match`` (all calls when empty) run without waiting."""

    session = models.ForeignKey(
        "sessions_app.AgentSession", on_delete=models.CASCADE, related_name="approval_grants"
    )
    tool_name = models.CharField(max_length=100)
    match = models.JSONField(default=dict, blank=True)
    approval = models.OneToOneField(ApprovalRequest, on_delete=models.CASCADE, related_name="grant")
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.tool_name} for session {self.session_id}"
