"""Decision links: the signed URL in an approval e-mail that opens one request for one approver.

A link is ``SITE_URL/approvals/<id>/?t=<token>``; the token is signed with ``SECRET_KEY``
(``django.core.signing``, a salt of its own) over the approver's id, the request's id and the
hash of the arguments the approver was shown. Nothing is stored: a link is spent once its
approver has a decision on the request (``link_state``), and dies with the request: decided,
closed, or edited (the arguments' hash no longer matches).
"""

from enum import Enum

from django.conf import settings
from django.core import signing
from django.urls import reverse

from approvals_app.models import ApprovalRequest

SALT = "agentproj.approvals.decision-link"


class LinkState(Enum):
    """What a link that verified may still do."""

    # The confirmation page, and its POST decides.
    DECIDABLE = "decidable"
    # The request ended: the page says how, and no form.
    ENDED = "ended"
    # Its approver decided already through it or elsewhere: single use.
    USED = "used"
    # The arguments changed since the link was sent: it shows a call that will not run.
    STALE = "stale"


class InvalidLink(Exception):
    """Tampered, expired, or made for another request or another person."""


def token_for(approval: ApprovalRequest, approver_id: int) -> str:
    return signing.dumps(
        {"u": approver_id, "r": approval.pk, "h": approval.arguments_hash},
        salt=SALT,
        compress=True,
    )


def link_for(approval: ApprovalRequest, approver_id: int) -> str:
    path = reverse("approval-link", args=[approval.pk])
    return f"{settings.SITE_URL}{path}?t={token_for(approval, approver_id)}"


def arguments_hash_of(token: str, *, approval_id: int, user_id: int) -> str:
    """The arguments' hash the token was made for, once it verifies for this request and this
    user (``InvalidLink`` otherwise). A link outlives no request: it expires with the longest a
    request may wait, and a day's grace for clocks."""
    try:
        claims = signing.loads(token, salt=SALT, max_age=settings.APPROVAL_TIMEOUT + 24 * 3600)
    except signing.BadSignature:
        raise InvalidLink() from None
    if not isinstance(claims, dict) or claims.get("r") != approval_id:
        raise InvalidLink()
    if claims.get("u") != user_id or not isinstance(claims.get("h"), str):
        raise InvalidLink()
    return claims["h"]


def link_state(approval: ApprovalRequest, *, user_id: int, signed_hash: str) -> LinkState:
    if not approval.is_pending:
        return LinkState.ENDED
    if approval.decisions.filter(approver_id=user_id).exists():
        return LinkState.USED
    if signed_hash != approval.arguments_hash:
        return LinkState.STALE
    return LinkState.DECIDABLE
