"""The approval queue: approvers decide pending tool calls here, through the same service as the
API. The request itself is never edited by form; a decision is a POST to an action or to a
change-page button, and the change page's approval may carry edited arguments and a grant."""

import copy
import difflib
import json

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
from django.utils.timesince import timesince, timeuntil
from django.views.decorators.http import require_POST

from agentproj.vocabulary import TurnStatus
from approvals_app import errors, selectors, services
from approvals_app.admin.forms import ApproveForm, RejectForm
from approvals_app.models import ApprovalDecision, ApprovalRequest, ApprovalStatus

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
# Refusals a decision may meet, and what the queue says about each.
REFUSALS = (
    errors.NotPending,
    errors.SelfApprovalForbidden,
    errors.NotEligible,
    errors.PolicyDenied,
)


# The queue's one-line summary of a call's arguments: long enough for "to" and "subject", short
# enough that the row stays one line at 1280 px; the whole line is in the cell's title.
SUMMARY_LENGTH = 70
SUMMARY_TITLE_LENGTH = 1000
SHORT_VALUE = 40
# The row buttons say they came from the queue: a refusal goes back to the queue, and a row's
# Reject without a reason asks for one on a page of its own.
FROM_QUEUE = "from_queue"
ALL_STATUSES = "all"


def one_line(value) -> str:
    """An argument's value as one line of text: strings as they read, the rest as compact JSON;
    runs of whitespace (newlines included) fold to one space."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return " ".join(value.split())


def arguments_summary(arguments: dict) -> str:
    """Short values first, then by name: PostgreSQL's jsonb keeps no key order, and a recipient
    or a subject says more at a glance than the first words of a body."""
    lines = {name: one_line(value) for name, value in arguments.items()}
    order = sorted(lines, key=lambda name: (len(lines[name]) > SHORT_VALUE, name))
    return " · ".join(f"{name}: {lines[name]}" for name in order)


def truncated(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def pretty_lines(arguments: dict) -> list[str]:
    return json.dumps(arguments, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def arguments_diff(requested: dict, edited: dict) -> list[tuple[str, str, str]]:
    """The requested and the edited arguments, line by line over their pretty JSON: (kind, sign,
    line) with kind "same", "removed" or "added"; the sign says it where colour cannot."""
    kinds = {"  ": ("same", " "), "- ": ("removed", "-"), "+ ": ("added", "+")}
    lines = []
    for line in difflib.ndiff(pretty_lines(requested), pretty_lines(edited)):
        if line[:2] in kinds:  # ndiff's "? " hint lines point at characters: left out
            kind, sign = kinds[line[:2]]
            lines.append((kind, sign, line[2:]))
    return lines


def exact_time(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


class StatusFilter(admin.SimpleListFilter):
    """The queue opens on what waits for a decision: pending unless another status, or all, is
    chosen. Same parameter as the admin's own status filter, so links to it keep working."""

    title = "status"
    parameter_name = "status__exact"

    def lookups(self, request, model_admin):
        return ApprovalStatus.choices

    def value(self):
        return super().value() or ApprovalStatus.PENDING

    def queryset(self, request, queryset):
        if self.value() == ALL_STATUSES:
            return queryset
        return queryset.filter(status=self.value())

    def choices(self, changelist):
        yield {
            "selected": self.value() == ALL_STATUSES,
            "query_string": changelist.get_query_string({self.parameter_name: ALL_STATUSES}),
            "display": "All",
        }
        for value, label in self.lookup_choices:
            yield {
                "selected": self.value() == str(value),
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


def refusal_text(refusal: Exception) -> str:
    return NOT_PENDING if isinstance(refusal, errors.NotPending) else refusal.detail


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


class ApprovalRequestAdmin(admin.ModelAdmin):
    # The status first: it is what an approver scans for, and the queue's table is wider than a
    # laptop screen with the admin's navigation and the filters open.
    # No id column: the tool's name links to the request's page, and the row needs the room.
    list_display = [
        "status",
        "tool_name",
        "summary",
        "requested_by",
        "age",
        "row_decision",
    ]
    list_display_links = ["tool_name"]
    list_filter = [StatusFilter, "tool_name"]
    list_select_related = ["turn__session__owner"]
    actions = ["approve_selected", "reject_selected"]
    inlines = [ApprovalDecisionInline]
    fields = [
        "status",
        "approvals_needed",
        "approvals_given",
        "allow_self_approval",
        "group",
        "rule_name",
        "escalate_to",
        "escalate_at",
        "escalated_at",
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
        "receipt",
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

    def get_list_display(self, request):
        # The row buttons only for those who may decide (staff who may only view see none).
        if self.has_decide_permission(request):
            return self.list_display
        return [name for name in self.list_display if name != "row_decision"]

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
            "call_arguments": "\n".join(pretty_lines(approval.arguments)),
            "arguments_diff": None
            if approval.edited_arguments is None
            else arguments_diff(approval.arguments, approval.edited_arguments),
            # An approval the form refused comes back with what was sent and what was wrong.
            **(extra_context or {}),
            "decidable": decidable,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # Columns

    @admin.display(description="receipt")
    def receipt(self, obj):
        if not obj.result_sha256:
            return "None until the approved call has run"
        url = reverse("api-approval-receipt", args=[obj.pk])
        return format_html(
            '<a href="{}" download="approval-{}-receipt.json">Download</a>', url, obj.pk
        )

    @admin.display(description="session", ordering="turn__session__created_at")
    def session(self, obj):
        session = obj.turn.session
        # The conversation as its approvers may read it (read-only), not the session's admin
        # page, which only superusers may open.
        url = reverse("session-detail", args=[session.pk])
        return format_html('<a href="{}">{}</a>', url, session)

    @admin.display(description="requested by", ordering="turn__session__owner__username")
    def requested_by(self, obj):
        # The conversation under the requester's name, not a column of its own: the row has to
        # fit a laptop screen beside the admin's navigation and filters.
        session = obj.turn.session
        return format_html(
            '<span class="approval-requester">{}</span> <a href="{}" title="{}">conversation</a>',
            obj.turn.session.owner.get_username(),
            reverse("session-detail", args=[session.pk]),
            session,
        )

    @admin.display(description="arguments")
    def summary(self, obj):
        line = arguments_summary(obj.arguments_to_run)
        return format_html(
            '<span class="approval-summary" title="{}">{}</span>',
            truncated(line, SUMMARY_TITLE_LENGTH),
            truncated(line, SUMMARY_LENGTH),
        )

    @admin.display(description="age · expiry", ordering="created_at")
    def age(self, obj):
        """How long the request has waited over when it expires: relative, exact in the titles.
        One column, not two: the row has to fit a laptop screen beside the admin's navigation
        and filters."""
        if obj.expires_at <= timezone.now():
            expiry = "expired"
        else:
            expiry = f"expires in {timeuntil(obj.expires_at, depth=1)}"
        return format_html(
            '<time class="approval-age" datetime="{}" title="{}">{} ago</time> '
            '<time class="approval-expiry" datetime="{}" title="{}">{}</time>',
            obj.created_at.isoformat(),
            exact_time(obj.created_at),
            timesince(obj.created_at, depth=1),
            obj.expires_at.isoformat(),
            exact_time(obj.expires_at),
            expiry,
        )

    @admin.display(description="decide")
    def row_decision(self, obj):
        """Approve and Reject for a pending request, as buttons of the changelist's own form
        (a form cannot nest in it) posting to the change page's decision URLs with its CSRF
        token. Reject asks for the reason on a page of its own. The service judges who may
        decide; the buttons are only offered."""
        if not obj.is_pending:
            return ""
        return format_html(
            '<span class="approval-row-decision">'
            '<button type="submit" class="button default" formaction="{}" name="{}" value="1"'
            ' aria-label="Approve request #{}">Approve</button> '
            '<button type="submit" class="button" formaction="{}" name="{}" value="1"'
            ' aria-label="Reject request #{}…">Reject…</button></span>',
            reverse("admin:approvals_app_approvalrequest_approve", args=[obj.pk]),
            FROM_QUEUE,
            obj.pk,
            reverse("admin:approvals_app_approvalrequest_reject", args=[obj.pk]),
            FROM_QUEUE,
            obj.pk,
        )

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

    def response_action(self, request, queryset):
        # Rows ticked on the page are decided by id whatever the status filter says now: a row
        # decided elsewhere since the page was drawn is then reported as not decided instead of
        # silently dropped. "Select all N" keeps the filtered set.
        if request.POST.get("select_across", "0") == "0":
            queryset = self.get_queryset(request)
        return super().response_action(request, queryset)

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
                back = self._back_to(request, change_url)
                return self._not_decided(request, approval, refusal, back)
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
        from_queue = FROM_QUEUE in request.POST
        if from_queue and "reason" not in request.POST:
            if not approval.is_pending:
                # Decided elsewhere since the queue was drawn: no reason to ask for.
                back = self._back_to(request, change_url)
                return self._not_decided(request, approval, errors.NotPending(), back)
            # A row's Reject…: the reason first, on a page of its own.
            return self._reject_page(request, approval, RejectForm())
        form = RejectForm(request.POST)
        if not form.is_valid():
            if from_queue:
                return self._reject_page(request, approval, form)
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
            return self._not_decided(request, approval, refusal, self._back_to(request, change_url))
        return self._decided(request, approval, "Rejected")

    def _reject_page(self, request, approval, form):
        return TemplateResponse(
            request,
            "admin/approvals_app/approvalrequest/reject_one.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Reject request #{approval.pk}",
                "opts": self.model._meta,
                "approval": approval,
                "summary": arguments_summary(approval.arguments_to_run),
                "form": form,
                "from_queue": FROM_QUEUE,
            },
        )

    def _back_to(self, request, change_url: str) -> str:
        """Where a refused decision goes back to: the queue for a row's button, else the
        request's own page."""
        if FROM_QUEUE in request.POST:
            return reverse("admin:approvals_app_approvalrequest_changelist")
        return change_url

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
