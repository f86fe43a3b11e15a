"""The approval queue: approvers decide pending tool calls here, through the same service as the
API. The request itself is never edited by form; a decision is a POST to an action or to a
change-page button, and the change page's approval may carry edited arguments and a grant."""

import copy
import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, IntegerField, Value, When
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from agentproj.admin_access import SuperuserOnlyAdmin
from agentproj.forms import BoundedJSONField
from agentproj.validators import human_text, plain_text_with_content
from agentproj.vocabulary import DECISION_REASON_MAX_LENGTH, TurnStatus
from approvals_app import errors, selectors, services
from approvals_app.models import (
    ApprovalDecision,
    ApprovalRequest,
    ApprovalStatus,
    PolicyRule,
    SessionGrant,
)

# The change page's approval form (``approve-arguments``, ...): ids apart from the page's own.
APPROVE_FORM_ID = "approve-%s"
# What the change page says at the top about each field of a decision form it refused.
FIELD_PROBLEMS = {
    "reason": "The reason was not accepted",
    "arguments": "The arguments were not accepted",
    "grant": "The grant was not accepted",
    "grant_match": "The grant was not accepted",
}
# Refusals of an approval that are about what the form sent, and the field each is about.
FORM_REFUSALS = {
    errors.InvalidArguments: "arguments",
    errors.PolicyDenied: "arguments",
    errors.InvalidGrant: "grant_match",
    errors.GrantNotAllowed: "grant",
}
# A select-across on a long queue must not turn into a wall of ids.
REFUSED_IDS_SHOWN = 10
NOT_PENDING = (
    "It was already decided, cancelled or expired, or its turn is no longer waiting for approval."
)
ARGUMENTS_NOT_AN_OBJECT = "Give the arguments as a JSON object: names and values in braces."
# Refusals a decision may meet, and what the queue says about each.
REFUSALS = (
    errors.NotPending,
    errors.SelfApprovalForbidden,
    errors.NotEligible,
    errors.PolicyDenied,
)


def refusal_text(refusal: Exception) -> str:
    return NOT_PENDING if isinstance(refusal, errors.NotPending) else refusal.detail


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


class ApprovalDecisionInline(admin.TabularInline):
    """Who has approved or rejected so far: a quorum's progress, read-only."""

    model = ApprovalDecision
    fields = ["approver", "decision", "reason", "at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return services.can_decide(request.user) or super().has_view_permission(request, obj)


@admin.register(ApprovalDecision)
class ApprovalDecisionAdmin(admin.ModelAdmin):
    """The audit of decisions, by approver and date."""

    list_display = ["at", "approver", "decision", "approval", "reason"]
    list_filter = ["decision", "approver"]
    list_select_related = ["approver", "approval"]
    date_hierarchy = "at"
    readonly_fields = ["approval", "approver", "decision", "reason", "at"]

    def get_queryset(self, request):
        # A decision names its request and its reason: shown to those who may see the request.
        return (
            super()
            .get_queryset(request)
            .filter(selectors.approval_visibility(request.user, through="approval__"))
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SessionGrant)
class SessionGrantAdmin(admin.ModelAdmin):
    """Session grants, and revoking them; they are made only by approving a request."""

    list_display = ["pk", "session", "tool_name", "match", "granted_by", "created_at", "revoked_at"]
    list_filter = ["tool_name", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["session", "granted_by"]
    readonly_fields = [
        "session",
        "tool_name",
        "match",
        "approval",
        "granted_by",
        "created_at",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke_selected"]

    def get_queryset(self, request):
        # A grant's match holds the approved call's arguments: shown as its request is.
        return (
            super()
            .get_queryset(request)
            .filter(selectors.approval_visibility(request.user, through="approval__"))
        )

    def has_view_permission(self, request, obj=None):
        return services.can_decide(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request) -> bool:
        return services.can_decide(request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Revoke selected grants", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        for grant in queryset:
            services.grant_revoke(
                session_id=grant.session_id, grant_id=grant.pk, actor=request.user
            )
        self.message_user(request, f"Revoked {queryset.count()} grant(s).", messages.SUCCESS)


@admin.register(PolicyRule)
class PolicyRuleAdmin(SuperuserOnlyAdmin):
    """Policies are edited by superusers only: a rule decides who may run what."""

    list_display = [
        "tool_name",
        "agent",
        "position",
        "name",
        "field",
        "operator",
        "value",
        "outcome",
        "group",
        "quorum",
        "allow_self_approval",
    ]
    list_display_links = ["name"]
    list_filter = ["tool_name", "agent", "outcome"]
    fieldsets = [
        (None, {"fields": ["name", "tool_name", "agent", "position"]}),
        ("Condition (leave empty to match every call)", {"fields": ["field", "operator", "value"]}),
        ("Outcome", {"fields": ["outcome", "group", "quorum", "allow_self_approval"]}),
    ]


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    # The status first: it is what an approver scans for, and the queue's table is wider than a
    # laptop screen with the admin's navigation and the filters open.
    list_display = [
        "pk",
        "status",
        "session",
        "requested_by",
        "tool_name",
        "arguments_pretty",
        "created_at",
        "expires_at",
    ]
    list_display_links = ["pk", "tool_name"]
    list_filter = ["status", "tool_name"]
    list_select_related = ["turn__session__owner"]
    actions = ["approve_selected", "reject_selected"]
    inlines = [ApprovalDecisionInline]
    fields = [
        "status",
        "approvals_needed",
        "approvals_given",
        "allow_self_approval",
        "group",
        "edited_arguments",
        "edited_by",
        "session",
        "requested_by",
        "turn",
        "tool_name",
        "tool_call_id",
        "arguments_pretty",
        "arguments_hash",
        "created_at",
        "expires_at",
        "decided_by",
        "decided_at",
        "reason",
        "executed_at",
    ]
    readonly_fields = fields

    # Permissions: deciding is its own permission; nobody adds, edits or bulk-deletes requests.

    def has_decide_permission(self, request) -> bool:
        return services.can_decide(request.user)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or self.has_decide_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # The queue: the requests this user may see (``selectors``), pending first, then oldest
    # first. Pages only read: overdue requests are left out of the list, and the scheduled
    # housekeeping expires them.

    def get_queryset(self, request):
        return selectors.approvals_listed_for(request.user).order_by(*self.get_ordering(request))

    def get_object(self, request, object_id, from_field=None):
        """A request's own page opens past its deadline too (without the decision form), for an
        approver who follows a link to it; the list no longer shows it."""
        visible = selectors.approvals_visible_to(request.user)
        opts = ApprovalRequest._meta
        field = opts.pk if from_field is None else opts.get_field(from_field)
        try:
            return visible.get(**{field.name: field.to_python(object_id)})
        except (ApprovalRequest.DoesNotExist, ValidationError, ValueError):
            return None

    def get_ordering(self, request):
        pending_first = Case(
            When(status=ApprovalStatus.PENDING, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return [pending_first.asc(), "created_at", "pk"]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": "Approval queue",
            **(extra_context or {}),
            "live_queue": self.has_decide_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        approval = self.get_object(request, unquote(object_id))
        if approval is None:
            # Not the admin's redirect to its index: a request this user may not see answers as
            # one that does not exist, and a link to it from an e-mail should say "not found".
            raise Http404
        decidable = (
            approval.is_pending
            and approval.expires_at > timezone.now()
            and approval.turn.status == TurnStatus.WAITING_FOR_APPROVAL
            and self.has_decide_permission(request)
        )
        extra_context = {
            "approve_form": ApproveForm(approval=approval, auto_id=APPROVE_FORM_ID)
            if decidable
            else None,
            "reject_form": RejectForm(),
            # An approval the form refused comes back with what was sent and what was wrong.
            **(extra_context or {}),
            "decidable": decidable,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # Columns

    @admin.display(description="session", ordering="turn__session__created_at")
    def session(self, obj):
        session = obj.turn.session
        url = reverse("admin:sessions_app_agentsession_change", args=[session.pk])
        return format_html('<a href="{}">{}</a>', url, session)

    @admin.display(description="requested by", ordering="turn__session__owner__username")
    def requested_by(self, obj):
        return obj.turn.session.owner.get_username()

    @admin.display(description="arguments")
    def arguments_pretty(self, obj):
        pretty = json.dumps(obj.arguments, indent=2, sort_keys=True, ensure_ascii=False)
        # Styled by agentproj/admin.css: the CSP refuses inline style attributes.
        return format_html('<pre class="approval-arguments">{}</pre>', pretty)

    # Decisions

    @admin.action(description="Approve selected requests", permissions=["decide"])
    def approve_selected(self, request, queryset):
        self._require_decide(request)
        self._decide_many(request, queryset, approve=True, reason="")

    @admin.action(description="Reject selected requests…", permissions=["decide"])
    def reject_selected(self, request, queryset):
        self._require_decide(request)
        form = RejectForm(request.POST if "confirm_reject" in request.POST else None)
        if form.is_valid():
            self._decide_many(request, queryset, approve=False, reason=form.cleaned_data["reason"])
            return None
        # The intermediate page: the reason, then the same action again with confirm_reject.
        return TemplateResponse(
            request,
            "admin/approvals_app/approvalrequest/reject_selected.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reject approval requests",
                "opts": self.model._meta,
                "approvals": queryset.select_related("turn__session"),
                "form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def _decide_many(self, request, queryset, *, approve: bool, reason: str) -> None:
        decided, refused = 0, {}
        for approval in queryset.order_by("created_at", "pk"):
            try:
                services.approval_decide(
                    approval_id=approval.pk, actor=request.user, approve=approve, reason=reason
                )
            except REFUSALS as refusal:
                refused.setdefault(refusal_text(refusal), []).append(approval)
            else:
                decided += 1
        if decided:
            verb = "Approved" if approve else "Rejected"
            self.message_user(request, f"{verb} {decided} request(s).", messages.SUCCESS)
        for why, approvals in refused.items():
            if approvals:
                ids = ", ".join(f"#{a.pk}" for a in approvals[:REFUSED_IDS_SHOWN])
                if len(approvals) > REFUSED_IDS_SHOWN:
                    ids += f" and {len(approvals) - REFUSED_IDS_SHOWN} more"
                self.message_user(request, f"Not decided: {ids}. {why}", messages.ERROR)

    # The change page's Approve and Reject buttons

    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path(
                "<path:object_id>/approve/",
                self.admin_site.admin_view(require_POST(self.approve_view)),
                name=f"{prefix}_approve",
            ),
            path(
                "<path:object_id>/reject/",
                self.admin_site.admin_view(require_POST(self.reject_view)),
                name=f"{prefix}_reject",
            ),
            *super().get_urls(),
        ]

    def approve_view(self, request, object_id):
        approval, change_url = self._button_target(request, object_id)
        form = ApproveForm(request.POST, approval=approval, auto_id=APPROVE_FORM_ID)
        if form.is_valid():
            try:
                services.approval_decide(
                    approval_id=approval.pk,
                    actor=request.user,
                    approve=True,
                    reason=form.cleaned_data["reason"],
                    arguments=form.arguments_to_approve(),
                    grant=form.grant_to_make(),
                )
            except tuple(FORM_REFUSALS) as refusal:
                form.add_error(FORM_REFUSALS[type(refusal)], refusal.detail)
            except REFUSALS as refusal:
                return self._not_decided(request, approval, refusal, change_url)
            else:
                return self._decided(request, approval, "Approved")
        for name, problems in form.errors.items():
            self.message_user(
                request, f"{FIELD_PROBLEMS[name]}: {' '.join(problems)}", messages.ERROR
            )
        # The change view would treat a POST as saving the (read-only) request: it shows the
        # page as for a GET, with the approval form as it was sent.
        page_request = copy.copy(request)
        page_request.method = "GET"
        return self.change_view(page_request, object_id, extra_context={"approve_form": form})

    def reject_view(self, request, object_id):
        approval, change_url = self._button_target(request, object_id)
        form = RejectForm(request.POST)
        if not form.is_valid():
            if not request.POST.get("reason", "").strip():
                problem = "Give a reason to reject this request."
            else:
                problem = f"{FIELD_PROBLEMS['reason']}: {' '.join(form.errors['reason'])}"
            self.message_user(request, problem, messages.ERROR)
            return HttpResponseRedirect(change_url)
        try:
            services.approval_decide(
                approval_id=approval.pk,
                actor=request.user,
                approve=False,
                reason=form.cleaned_data["reason"],
            )
        except REFUSALS as refusal:
            return self._not_decided(request, approval, refusal, change_url)
        return self._decided(request, approval, "Rejected")

    def _button_target(self, request, object_id) -> tuple[ApprovalRequest, str]:
        self._require_decide(request)
        approval = self.get_object(request, unquote(object_id))
        if approval is None:
            raise Http404
        return approval, reverse("admin:approvals_app_approvalrequest_change", args=[approval.pk])

    def _not_decided(self, request, approval, refusal, change_url):
        self.message_user(
            request,
            f"Request #{approval.pk} was not decided. {refusal_text(refusal)}",
            messages.ERROR,
        )
        return HttpResponseRedirect(change_url)

    def _decided(self, request, approval, verb: str):
        self.message_user(
            request, f"{verb} request #{approval.pk} ({approval.tool_name}).", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:approvals_app_approvalrequest_changelist"))

    def _require_decide(self, request) -> None:
        if not self.has_decide_permission(request):
            raise PermissionDenied
