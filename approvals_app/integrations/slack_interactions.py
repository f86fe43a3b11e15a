"""``POST /integrations/slack/interactions/``: where Slack sends presses of our buttons.

Only a request Slack signed is read (``X-Slack-Signature`` = ``v0=`` hex HMAC-SHA256 of
``v0:<timestamp>:<raw body>`` with ``SLACK_SIGNING_SECRET``, compared in constant time; a
timestamp more than 5 minutes away, or a signature seen before, is refused: 401). A verified
press is answered 200 at once, as Slack expects within 3 seconds, and decided in a django-q2 task
(``slack_presses``), which tells the presser why when it decides nothing.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from django_q.tasks import async_task
from slack_sdk.signature import SignatureVerifier

from agentproj import json_limits
from approvals_app import notifications
from approvals_app.integrations.slack_presses import Press

logger = logging.getLogger(__name__)

# Slack's own rule: a request older than this may be a replay.
MAX_AGE_SECONDS = 5 * 60
SEEN_PREFIX = "slack-signature-seen:"


def refusal(code: str, detail: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


@csrf_exempt  # Slack signs its requests instead; it has no CSRF token to send.
@require_POST
def slack_interactions(request: HttpRequest) -> HttpResponse:
    if not notifications.slack_enabled():
        return refusal("not_found", "Slack approvals are not set up here.", 404)
    body = request.body
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp.isascii() or not timestamp.isdigit():
        return refusal("slack_unsigned", "The request has no Slack timestamp.", 401)
    if abs(time.time() - int(timestamp)) > MAX_AGE_SECONDS:
        return refusal("slack_stale", "The request's Slack timestamp is too old.", 401)
    verifier = SignatureVerifier(settings.SLACK_SIGNING_SECRET)
    if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
        return refusal("slack_bad_signature", "The request's Slack signature is wrong.", 401)
    # Within its 5 minutes a signed request could be sent again by whoever saw it; with a shared
    # cache (CACHE_URL) this holds across web processes too.
    if not cache.add(SEEN_PREFIX + signature, True, MAX_AGE_SECONDS * 2):
        return refusal("slack_replayed", "This Slack request was received already.", 401)
    press = press_of(request.POST.get("payload", ""))
    if press is None:
        return refusal("slack_malformed", "The Slack payload is not a button press.", 400)
    async_task(
        "approvals_app.tasks.slack_press",
        press,
        q_options={"task_name": "slack-press", "group": "notifications"},
    )
    return HttpResponse(status=200)


def press_of(raw: str) -> Press | None:
    """The press in Slack's ``block_actions`` payload; None when it is not one. Which button it
    was is judged by the task, which can tell the presser."""
    try:
        payload = json_limits.loads(raw)
    except json_limits.InvalidJson:
        return None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    user = payload.get("user")
    actions = payload.get("actions")
    channel = payload.get("channel") or payload.get("container") or {}
    response_url = payload.get("response_url") or ""
    if not (isinstance(user, dict) and isinstance(user.get("id"), str) and user["id"]):
        return None
    if not (isinstance(actions, list) and len(actions) == 1 and isinstance(actions[0], dict)):
        return None
    if not isinstance(channel, dict) or not isinstance(response_url, str):
        return None
    channel_id = channel.get("id") or channel.get("channel_id") or ""
    return {
        "user": user["id"],
        "action": str(actions[0].get("action_id", "")),
        "response_url": response_url,
        "channel": channel_id if isinstance(channel_id, str) else "",
    }
