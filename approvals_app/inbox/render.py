"""The inbox's items: each pending request drawn as the chat page draws its card
(``templates/sessions/events/approval_requested.html`` through ``timeline.render``), from the
fold of its turn's status and approval events, with what an approver needs around it: who asked,
the agent, the message that led to the call, and the way to the conversation."""

from dataclasses import dataclass

from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from agentproj.vocabulary import EventKind
from approvals_app import selectors
from approvals_app.models import ApprovalRequest
from sessions_app.core import selectors as session_selectors
from sessions_app.web.timeline import fold, render, words

# The newest requests an inbox shows; more than a person works through between two visits.
INBOX_LIMIT = 100
CARD_KINDS = (EventKind.STATUS, EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED)


@dataclass(frozen=True)
class Item:
    approval_id: int
    html: SafeString


def inbox_approvals(user) -> list[ApprovalRequest]:
    return list(
        selectors.approvals_decidable_by(user)
        .select_related("turn__session__owner", "turn__session__agent", "turn__parent")
        .order_by("-created_at", "-pk")[:INBOX_LIMIT]
    )


def inbox_count(user) -> int:
    return selectors.approvals_decidable_by(user).count()


def inbox_items(user, *, csrf_token: str = "") -> list[Item]:
    """The requests ``user`` may decide now, newest first, in two queries whatever their
    number. ``csrf_token``: the forms' token, when drawn for a page (a socket's fragments get
    the page's from its script)."""
    approvals = inbox_approvals(user)
    events = session_selectors.events_of_turns({a.turn_id for a in approvals}, kinds=CARD_KINDS)
    return [
        Item(approval.pk, card_html(approval, events[approval.turn_id], csrf_token=csrf_token))
        for approval in approvals
    ]


def card_html(approval: ApprovalRequest, turn_events: list, *, csrf_token: str) -> SafeString:
    timeline = fold.fold(turn_events)
    requested = next(
        event
        for event in turn_events
        if event["kind"] == EventKind.APPROVAL_REQUESTED
        and event["data"].get("approval") == approval.pk
    )
    decisions = [
        render.render_item(event, timeline, can_decide=False)
        for event in turn_events
        if event["kind"] == EventKind.APPROVAL_DECIDED
        and event["data"].get("approval") == approval.pk
    ]
    session = approval.turn.session
    leading = approval.turn.parent or approval.turn
    inbox = {
        "requester": session.owner.get_username(),
        "agent": session.agent.name,
        "message": leading.user_message,
        "session_url": reverse("session-detail", args=[session.pk]),
        "session_name": str(session),
        "decide_url": reverse("approval-inbox-decide", args=[approval.pk]),
        "csrf_token": csrf_token,
        "created_at": approval.created_at,
        "arguments_json": _editable(timeline.card(approval.pk)),
    }
    nested = {f"approval-{approval.pk}-decisions": decisions}
    return mark_safe(
        render.render_item(requested, timeline, can_decide=True, nested=nested, inbox=inbox)
    )


def _editable(card) -> str:
    return words.pretty(card.arguments) if card is not None else ""
