"""The inbox page, its plain-form decisions, and the page a decision link opens.

Every decision here goes through ``services.approval_decide``, as the API's and the admin's do;
a refusal changes nothing and is told in words (``ServiceError.detail``), never an exception's
text.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from agentproj import json_limits
from agentproj.api_errors import SERVICE_ERROR_STATUS
from agentproj.errors import ServiceError
from agentproj.throttling import DecideThrottle, page_throttle
from agentproj.validators import human_text
from agentproj.vocabulary import DECISION_REASON_MAX_LENGTH
from approvals_app import links, receipts, selectors, services
from approvals_app.inbox.render import inbox_items
from approvals_app.models import ApprovalRequest, ApprovalStatus
from approvals_app.notifications import pretty_arguments


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    reason = forms.CharField(
        max_length=DECISION_REASON_MAX_LENGTH,
        required=False,
        strip=False,
        # It reaches the other approvers' e-mails: no bidirectional controls.
        validators=[human_text],
    )


class InboxDecisionForm(DecisionForm):
    """The inbox card's form: the arguments as the approver left them in its editor (the call's
    own when untouched), and a grant."""

    arguments = forms.CharField(required=False, strip=False)
    grant = forms.BooleanField(required=False)

    def edited_arguments(self, approval: ApprovalRequest) -> dict | None:
        """The arguments the approver changed, or None when they are the ones that stand."""
        text = self.cleaned_data["arguments"].strip()
        if not text or self.cleaned_data["decision"] != "approve":
            return None
        try:
            arguments = json_limits.loads(text)
        except json_limits.InvalidJson:
            raise forms.ValidationError("The arguments are not valid JSON.") from None
        if not isinstance(arguments, dict):
            raise forms.ValidationError("The arguments are a JSON object.")
        return None if arguments == approval.arguments_to_run else arguments


def _approver(request) -> None:
    if not services.can_decide(request.user):
        raise PermissionDenied


def _named(approval: ApprovalRequest) -> str:
    return f"Request {approval.pk} ({approval.tool_name})"


def _first_error(form: forms.Form) -> str:
    return next(iter(form.errors.values()))[0]


@login_required
def inbox(request):
    """The requests this approver may decide now, newest first (``selectors``); live through
    ``inbox.js`` and the inbox socket, and usable without either."""
    _approver(request)
    return render(
        request,
        "approvals/inbox.html",
        {"items": inbox_items(request.user, csrf_token=get_token(request))},
    )


@login_required
@require_POST
@page_throttle(DecideThrottle, methods=("POST",))
def inbox_decide(request, approval_id):
    """A card's form, posted: decide, then back to the inbox with what happened."""
    _approver(request)
    approval = _visible(request.user, approval_id)
    form = InboxDecisionForm(request.POST)
    try:
        if not form.is_valid():
            raise forms.ValidationError(_first_error(form))
        approve = form.cleaned_data["decision"] == "approve"
        arguments = form.edited_arguments(approval)
        grant = None
        if approve and form.cleaned_data["grant"]:
            grant = request.POST.getlist("grant_match")
        services.approval_decide(
            approval_id=approval.pk,
            actor=request.user,
            approve=approve,
            reason=form.cleaned_data["reason"],
            arguments=arguments,
            grant=grant,
        )
    except forms.ValidationError as problem:
        messages.error(request, f"{_named(approval)}: {problem.message}")
    except ServiceError as problem:
        messages.error(request, f"{_named(approval)}: {problem.detail}")
    else:
        approval.refresh_from_db()
        messages.success(request, _told(approval, approve))
    return redirect("approval-inbox")


def _visible(user, approval_id) -> ApprovalRequest:
    approval = selectors.approvals_visible_to(user).filter(pk=approval_id).first()
    if approval is None:
        raise Http404
    return approval


def _told(approval: ApprovalRequest, approve: bool) -> str:
    what = f"request {approval.pk} ({approval.tool_name})"
    if approval.status == ApprovalStatus.PENDING:
        missing = approval.approvals_needed - approval.approvals_given
        return f"You approved {what}; it waits for {missing} more approval{'s' * (missing != 1)}."
    return f"You {'approved' if approve else 'rejected'} {what}."


# Decision links


@login_required
@require_http_methods(["GET", "POST"])
@page_throttle(DecideThrottle, methods=("POST",))
def approval_link(request, approval_id):
    """The page a decision link opens (``links``). GET shows the call and, while the link may
    decide, a form; only its POST decides. A link for another person, tampered or expired is
    403; a request that ended shows how, and its POST is 409; a spent or outdated link decides
    nothing."""
    try:
        signed_hash = links.arguments_hash_of(
            request.GET.get("t", ""), approval_id=approval_id, user_id=request.user.pk
        )
    except links.InvalidLink:
        return _link_page(request, None, "invalid", status=403)
    approval = (
        ApprovalRequest.objects.select_related("turn__session__owner", "decided_by")
        .filter(pk=approval_id)
        .first()
    )
    if approval is None:
        return _link_page(request, None, "gone", status=404)
    visible = selectors.approvals_visible_to(request.user).filter(pk=approval_id).exists()
    if not (visible and services.can_decide(request.user)):
        return _link_page(request, None, "invalid", status=403)
    state = links.link_state(approval, user_id=request.user.pk, signed_hash=signed_hash)
    if state == links.LinkState.DECIDABLE and approval.expires_at <= timezone.now():
        state = links.LinkState.ENDED
    if state == links.LinkState.STALE:
        return _link_page(request, approval, state.value, status=403)
    if request.method == "GET" or state != links.LinkState.DECIDABLE:
        status = 200 if request.method == "GET" else 409
        return _link_page(request, approval, state.value, status=status)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _link_page(request, approval, state.value, status=400, error=_first_error(form))
    approve = form.cleaned_data["decision"] == "approve"
    try:
        services.approval_decide(
            approval_id=approval.pk,
            actor=request.user,
            approve=approve,
            reason=form.cleaned_data["reason"],
        )
    except ServiceError as problem:
        status = SERVICE_ERROR_STATUS.get(problem.code, 409)
        return _link_page(request, approval, state.value, status=status, error=str(problem.detail))
    approval.refresh_from_db()
    messages.success(request, _told(approval, approve))
    return redirect(request.get_full_path())


def _link_page(request, approval, state: str, *, status: int, error: str = ""):
    context = {"approval": approval, "state": state, "error": error}
    if approval is not None:
        context.update(
            arguments=pretty_arguments(approval.arguments_to_run),
            requester=approval.turn.session.owner.get_username(),
            ended=_ending(approval),
            decisions=approval.decisions.select_related("approver"),
            inbox_url=reverse("approval-inbox"),
            receipt_url=(
                reverse("api-approval-receipt", args=[approval.pk])
                if receipts.is_executed(approval) and receipts.may_read(request.user, approval)
                else ""
            ),
        )
    return render(request, "approvals/link.html", context, status=status)


def _ending(approval: ApprovalRequest) -> str:
    """How the request ended, or that it can no longer be decided, in one line."""
    if approval.status == ApprovalStatus.PENDING:
        if approval.expires_at <= timezone.now():
            return "It expired without a decision."
        return ""
    if approval.status == ApprovalStatus.EXPIRED:
        return "It expired without a decision; its turn was stopped."
    if approval.status == ApprovalStatus.CANCELLED:
        return "It was cancelled: its turn was stopped before a decision."
    decider = approval.decided_by.get_username() if approval.decided_by else "someone"
    reason = f": {approval.reason}" if approval.reason else "."
    return f"It was {approval.status} by {decider}{reason}"
