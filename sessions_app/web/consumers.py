"""Websocket consumers. Thin: authenticate, join a group, replay, forward.

A client sends ``{"type": "resume", "after_seq": N}``; the consumer joins the session's group
first and then replays the persisted events after N, so no event can fall between the two. The
page de-duplicates by ``seq``. Each event goes out with its fragments, drawn from the socket's
fold of the timeline (``timeline.fold``): seeded on resume with the events through N that the
fold reads, then every event sent, so a live event costs no query.

Nothing a client sends can raise in here: every inbound frame is validated, and anything but a
well-formed message (not JSON, not an object, an unknown type, a bad ``after_seq``, a binary
frame) is answered with ``{"type": "error", "code": "invalid_message", "detail": ...}`` while the
socket stays open.

A user holds at most ``MAX_SOCKETS_PER_USER`` sockets at once, over every web process
(``socket_registry``): one more is refused before it is accepted, with close code 4429 (a
browser sees only a failed handshake, and the pages reconnect later). Replays are counted per
user (``API_THROTTLE_RATES["resume"]``): a resume beyond the rate is answered ``{"type":
"error", "code": "throttled", "detail": ...}`` and the socket is closed with 4429.

A socket lives no longer than the login it was opened with. Logging out closes every socket of
that login at once (``login_ended``, sent over the channel layer by the logout signal). Before
forwarding anything the consumer also re-checks the login (the session still exists, is not
expired, names the same active user with the same password) and what it allows (the session's
owner; an approver for the queue), and closes the socket if it no longer holds. That check is a
few indexed reads, so its result is trusted for ``WEBSOCKET_LOGIN_RECHECK_INTERVAL`` seconds:
token deltas never cost a query each, and a login that ended some other way (expired, password
changed, user deactivated, permission removed) is closed at the first message after that.
"""

import asyncio
import time
from importlib import import_module

from asgiref.sync import sync_to_async
from channels.auth import get_user
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from agentproj import json_limits
from agentproj.throttling import ResumeThrottle, spend
from agentproj.vocabulary import CloseCode
from approvals_app.services import can_decide
from sessions_app.core import broadcast, events, selectors, sockets
from sessions_app.web.fragments import session_fragments, session_title_html
from sessions_app.web.timeline import fold, render
from sessions_app.web.timeline.streams import StreamsOnPage

# Long sessions replay in batches, so one resume never loads the whole timeline at once.
REPLAY_BATCH = 500
# A resume frame is a few dozen characters; anything much longer is not one.
MAX_FRAME_CHARS = 1000
MAX_SEQ = 2**63 - 1
# How long a socket's token deltas may wait to go out together (see ``SessionConsumer``).
DELTA_SEND_INTERVAL = 0.025


class InvalidFrame(Exception):
    """An inbound frame that is not a message this socket understands; the text says why."""


def parse_frame(text_data: str | None) -> dict:
    if text_data is None:
        raise InvalidFrame("Frames are JSON text; binary frames are not understood.")
    if len(text_data) > MAX_FRAME_CHARS:
        raise InvalidFrame("The frame is too long.")
    try:
        content = json_limits.loads(text_data)
    except json_limits.InvalidJson as problem:
        # JSON beyond the limits (too deep, not finite) is told so; anything else is no frame.
        beyond = problem.detail in (json_limits.TOO_DEEP, json_limits.NOT_FINITE)
        raise InvalidFrame(problem.detail if beyond else "Frames are JSON objects.") from None
    if not isinstance(content, dict):
        raise InvalidFrame("Frames are JSON objects.")
    return content


def parse_after_seq(value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise InvalidFrame("after_seq must be a whole number, 0 or more.")
    return value


class LoginBoundConsumer(AsyncJsonWebsocketConsumer):
    """A socket that closes when the login it was opened with ends (see the module docstring)."""

    login_group: str | None = None
    counted = False
    # The close code for a visitor who is not logged in.
    anonymous_code = CloseCode.LOGIN_ENDED

    async def may_watch(self, user) -> int | None:
        """None when ``user`` may keep this socket, else the close code."""
        raise NotImplementedError

    async def connect(self):
        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            await self.close(code=self.anonymous_code)
            return
        refused = await self.may_watch(user)
        if refused is not None:
            await self.close(code=refused)
            return
        self.counted = await sockets.opened(user_id=user.pk, channel_name=self.channel_name)
        if not self.counted:
            await self.close(code=CloseCode.TOO_MANY)
            return
        self.user = user
        self.session_key = self.scope["session"].session_key
        self.login_checked_at = time.monotonic()
        self.ended = False
        self.login_group = broadcast.login_group(self.session_key)
        await self.channel_layer.group_add(self.login_group, self.channel_name)
        await self.joined()
        await self.accept()

    async def joined(self) -> None:
        """Join the groups whose messages this socket forwards."""

    async def disconnect(self, code):
        if self.login_group:
            await self.channel_layer.group_discard(self.login_group, self.channel_name)
        if self.counted:
            await sockets.closed(channel_name=self.channel_name)

    async def still_allowed(self, *, deleted_is_allowed: bool = False) -> bool:
        """Re-check the login and permission (at most once per interval); close if gone.
        ``deleted_is_allowed``: a session found gone (NOT_FOUND, with the login intact) does not
        close the socket, whose ``session_deleted`` message comes next."""
        if self.ended:
            return False
        if time.monotonic() - self.login_checked_at < settings.WEBSOCKET_LOGIN_RECHECK_INTERVAL:
            return True
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=self.session_key)
        user = await get_user({"session": store})
        if not user.is_authenticated or user.pk != self.user.pk:
            refused = CloseCode.LOGIN_ENDED
        else:
            refused = await self.may_watch(user)
        if refused == CloseCode.NOT_FOUND and deleted_is_allowed:
            return True
        if refused is not None:
            await self.end(refused)
            return False
        self.user = user
        self.login_checked_at = time.monotonic()
        return True

    async def end(self, code: int) -> None:
        self.ended = True
        await self.close(code=code)

    async def close(self, code=None, reason=None):
        # Daphne's websocket library closes an open socket only with a plain int: given a
        # CloseCode it raised, and the page saw its socket drop and kept reconnecting.
        await super().close(code=None if code is None else int(code), reason=reason)

    async def login_ended(self, message):
        await self.end(CloseCode.LOGIN_ENDED)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        try:
            await self.receive_message(parse_frame(text_data))
        except InvalidFrame as problem:
            await self.send_json(
                {"type": "error", "code": "invalid_message", "detail": str(problem)}
            )

    async def receive_message(self, content: dict) -> None:
        raise InvalidFrame("This socket takes no messages.")


class SessionConsumer(LoginBoundConsumer):
    """A session's timeline, live. Events (a status, a notice, the stored text) go out the moment
    they arrive; token deltas wait up to ``DELTA_SEND_INTERVAL`` and go out together, those of
    one message joined into one. A socket that falls behind, a hundred streams sharing the web
    process, thus never queues a Stop behind its text, and a page sees the text in fewer, larger
    pieces (the page takes a delta only where its text ends; the next checkpoint repairs it)."""

    group: str | None = None
    delta_sender: asyncio.Task | None = None

    async def may_watch(self, user) -> int | None:
        session_id = self.scope["url_route"]["kwargs"]["session_id"]
        owns = await database_sync_to_async(selectors.user_owns_session)(user, session_id)
        if not owns:
            return CloseCode.NOT_FOUND
        # Approval cards offer their controls to approvers only.
        self.decides = await database_sync_to_async(can_decide)(user)
        return None

    async def joined(self) -> None:
        self.session_id = self.scope["url_route"]["kwargs"]["session_id"]
        self.group = broadcast.session_group(self.session_id)
        self.pending_deltas: list[tuple[str, dict]] = []
        self.streams = StreamsOnPage()

    async def disconnect(self, code):
        if self.delta_sender is not None:
            self.delta_sender.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await super().disconnect(code)

    async def receive_message(self, content: dict) -> None:
        if content.get("type") != "resume":
            raise InvalidFrame('The only message is {"type": "resume", "after_seq": N}.')
        after = parse_after_seq(content.get("after_seq"))
        if not await self.still_allowed():
            return
        if await sync_to_async(spend)(ResumeThrottle(), self.user) is not None:
            await self.send_json(
                {
                    "type": "error",
                    "code": "throttled",
                    "detail": "Too many resumes in a short time. Reconnect in a while.",
                }
            )
            await self.end(CloseCode.TOO_MANY)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        # What the page drew through ``after`` is folded unsent: only the kinds the fold reads.
        self.timeline = fold.Timeline()
        self.streams = StreamsOnPage()
        async for event in self.persisted(0, through_seq=after, kinds=fold.STATE_KINDS):
            self.timeline.apply(event)
        last_seq = after
        async for event in self.persisted(after):
            await self.send_json(self.event_message(event))
            last_seq = event["seq"]
        await self.send_json({"type": "replayed", "last_seq": last_seq})

    async def persisted(self, after: int, **only):
        """The session's persisted events after ``after`` (``only``: see
        ``selectors.events_after``), read in batches: a long session's timeline is never loaded
        at once."""
        while True:
            batch = await database_sync_to_async(selectors.events_after)(
                self.session_id, after, limit=REPLAY_BATCH, **only
            )
            for event in batch:
                yield event
            if len(batch) < REPLAY_BATCH:
                return
            after = batch[-1]["seq"]

    async def timeline_event(self, message):
        # Deleting a session writes its last events (the stop of its active turn, with the one
        # notice) while the session still existed; its owner, watching, sees them even when the
        # check runs after the rows are gone.
        if await self.still_allowed(deleted_is_allowed=True):
            await self.send_json(self.event_message(message["event"]))

    def event_message(self, event: events.EventPayload) -> dict:
        """The event as the API has it, folded in, and its fragments drawn for this viewer; or,
        for a streaming answer the page shows already, what it lacks (``streams``)."""
        self.timeline.apply(event)
        checkpoint = self.streams.checkpoint(event)
        if checkpoint is not None:
            return checkpoint
        fragments = render.live_fragments(
            self.timeline, event, session_id=self.session_id, can_decide=self.decides
        )
        self.streams.sent_whole(event)
        return {"type": "event", "event": event, **fragments}

    async def timeline_delta(self, message):
        # Likewise a delta still queued behind the deletion: its check must not close the socket
        # before the deletion's events arrive.
        if not await self.still_allowed(deleted_is_allowed=True):
            return
        self.pending_deltas.append((self.group, message))
        if self.delta_sender is None:
            self.delta_sender = asyncio.create_task(self.send_deltas_soon())

    async def send_deltas_soon(self) -> None:
        await asyncio.sleep(DELTA_SEND_INTERVAL)
        self.delta_sender = None
        pending, self.pending_deltas = self.pending_deltas, []
        for _, message in broadcast.coalesce_deltas(pending):
            if self.ended:
                return
            delta = self.streams.delta(message["delta"])
            if delta is not None:
                await self.send_json({"type": "delta", "delta": delta})

    async def session_title(self, message):
        if await self.still_allowed(deleted_is_allowed=True):
            await self.send_json(
                {
                    "type": "session",
                    "title": message["title"],
                    "html": session_title_html(message["name"]),
                }
            )

    async def session_deleted(self, message):
        # Not re-checked: the owner check would fail now, and the notice tells nothing but
        # that the session is gone. The socket has nothing left to watch.
        if not self.ended:
            await self.send_json({"type": "session_deleted"})
            await self.end(CloseCode.NOT_FOUND)


class SessionListConsumer(LoginBoundConsumer):
    """Keeps an open session list and a chat page's sidebar current: a session re-rendered when
    it is created or its status or title changes, as the list's row and the sidebar's item
    (``{"type": "row", "session", "html", "item"}``), or ``{"type": "removed", "session"}``."""

    group: str | None = None

    async def may_watch(self, user) -> int | None:
        return None

    async def joined(self) -> None:
        self.group = broadcast.owner_group(self.user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await super().disconnect(code)

    async def sessions_changed(self, message):
        if not await self.still_allowed():
            return
        session_id = message["session"]
        fragments = await database_sync_to_async(session_fragments)(self.user, session_id)
        if fragments is None:
            await self.send_json({"type": "removed", "session": session_id})
        else:
            await self.send_json({"type": "row", "session": session_id, **fragments})


class ApprovalQueueConsumer(LoginBoundConsumer):
    """Tells an open admin approval queue that it changed; the page then refreshes its list."""

    anonymous_code = CloseCode.NOT_ALLOWED

    async def may_watch(self, user) -> int | None:
        return None if await database_sync_to_async(can_decide)(user) else CloseCode.NOT_ALLOWED

    async def joined(self) -> None:
        await self.channel_layer.group_add(broadcast.APPROVAL_QUEUE_GROUP, self.channel_name)

    async def disconnect(self, code):
        await self.channel_layer.group_discard(broadcast.APPROVAL_QUEUE_GROUP, self.channel_name)
        await super().disconnect(code)

    async def approvals_changed(self, message):
        if await self.still_allowed():
            await self.send_json({"type": "changed"})
