"""The one module that sends anything over the channel layer.

Timeline events go out once their rows commit (``core.events``). Token deltas are live-only.
Control messages tell the host running a turn to stop it (a cancel arrived). A request that
waits for a turn to end listens on the turn's session group (``turn_end``).

In a worker's turn host every message of every turn leaves through the host's ``Outbox``: one
ordered queue, sent in batches, so a hundred streaming turns cost a few channel-layer writes a
tick rather than one per delta, and a page never sees a turn's messages out of order. The host's
database threads send through it (``sending_through``): a service's on-commit broadcast made on
one of them joins that queue behind what the turn put there before."""

import asyncio
import hashlib
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from agentproj.vocabulary import (
    APPROVAL_QUEUE_MESSAGE_TYPE,
    CONTROL_MESSAGE_TYPE,
    DELTA_MESSAGE_TYPE,
    EVENT_MESSAGE_TYPE,
    LOGIN_ENDED_MESSAGE_TYPE,
    SESSION_DELETED_MESSAGE_TYPE,
    SESSION_TITLE_MESSAGE_TYPE,
    SESSIONS_CHANGED_MESSAGE_TYPE,
    TERMINAL_STATUSES,
    TURN_QUEUED_MESSAGE_TYPE,
    WAIT_OVER_MESSAGE_TYPE,
    EventKind,
)
from sessions_app.models import AgentSession, Turn

logger = logging.getLogger(__name__)


APPROVAL_QUEUE_GROUP = "approvals"
# The control channels of every turn host that takes turns as soon as they are queued.
TURN_HOSTS_GROUP = "turn-hosts"


class DeltaPayload(TypedDict):
    seq: int
    turn: int
    offset: int
    text: str


class SessionTitlePayload(TypedDict):
    type: str
    title: str
    # What pages show: the title, or the session's name by id while it has none.
    name: str


class ControlPayload(TypedDict):
    type: str
    turn: int
    action: Literal["cancel"]
    reason: str


def session_group(session_id) -> str:
    return f"session.{session_id}"


def host_control_channel(worker_id: str) -> str:
    """The one channel a worker process's turn host listens on for all the turns it runs.

    Derived from the ``worker_id`` the host writes into each turn it takes, so whoever accepts a
    cancel, on whatever machine, can address the host that runs the turn.
    """
    return "turn-host." + re.sub(r"[^A-Za-z0-9_.-]", "-", worker_id)[:90]


def owner_group(user_id) -> str:
    """The session lists one user has open."""
    return f"sessions-of.{user_id}"


def login_group(session_key: str) -> str:
    """The sockets opened with one login. Named by a hash: a session key is a credential."""
    return "login." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


# The outbox that on-commit broadcasts made on this thread go through (``sending_through``).
_this_thread = threading.local()


@contextmanager
def sending_through(outbox: "Outbox") -> Iterator[None]:
    """Send the group messages of services called on this thread, meanwhile, through ``outbox``.

    A turn host's database threads run every call under this, with the host's outbox: whichever
    of its tasks made the call (a turn, the batched checkpoint, an MCP server's record), the
    event it commits goes out in the one order the host's turns put their messages in, never
    ahead of a delta still queued. The threads are the host's own, so the outbox is theirs to
    name; a thread of any other process (a web request) has none and sends at once.
    """
    previous = getattr(_this_thread, "outbox", None)
    _this_thread.outbox = outbox
    try:
        yield
    finally:
        _this_thread.outbox = previous


@contextmanager
def sent_together() -> Iterator[None]:
    """Hold the messages sent on this thread meanwhile, and send them in one trip to the
    channel layer at the end, in order, each distinct message once.

    A request that commits several events (a sent message: the message, the turn's status, the
    owner's list) pays one hop to the layer's event loop instead of one per message, and the
    list's "changed" once however many of its events said so.
    """
    previous = getattr(_this_thread, "held", None)
    _this_thread.held = []
    try:
        yield
    finally:
        send_held()
        _this_thread.held = previous


def send_held() -> None:
    """Send what ``sent_together`` holds so far, now: before a turn is handed to a worker, so
    that its first events never reach a page behind the worker's."""
    held = getattr(_this_thread, "held", None)
    if held:
        _this_thread.held = []
        async_to_sync(_send_all)(held)


async def _send_all(messages: list[tuple[str, str, dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    for method, target, message in messages:
        try:
            await getattr(layer, method)(target, message)
        except Exception:
            logger.exception("channel layer %s to %s failed", method, target)


def send_now(method: str, target: str, message: dict[str, Any]) -> None:
    outbox = getattr(_this_thread, "outbox", None)
    if outbox is not None and method == "group_send":
        outbox.put_threadsafe(target, message)
        return
    held = getattr(_this_thread, "held", None)
    if held is not None:
        if (method, target, message) not in held:
            held.append((method, target, message))
        return
    # The row is committed and replayable; a lost live message only delays the page until its
    # next resume, so a channel-layer failure is logged rather than failing the caller.
    try:
        async_to_sync(getattr(get_channel_layer(), method))(target, message)
    except Exception:
        logger.exception("channel layer %s to %s failed", method, target)


def send_delta(outbox: "Outbox", *, session_id, payload: DeltaPayload) -> None:
    """Live-only token text; the persisted assistant event catches up at each checkpoint."""
    outbox.put(session_group(session_id), {"type": DELTA_MESSAGE_TYPE, "delta": payload})


class Outbox:
    """A turn host's one way out to the channel layer: group messages of all its turns, sent in
    the order they were put, in batches as large as the layer is behind.

    When the layer cannot keep up, token deltas beyond ``limit`` are dropped, with a warning,
    rather than growing without bound: they are live-only, and the next checkpoint of the text
    repairs every page. Events (a status, an interrupt notice, the stored text) never are.
    """

    def __init__(self, layer, *, limit: int = 10_000):
        self.layer = layer
        self.limit = limit
        self._loop = asyncio.get_running_loop()
        self._pending: asyncio.Queue = asyncio.Queue()
        self._dropped = 0
        self._sender = self._loop.create_task(self._send_until_closed())

    def put(self, group: str, message: dict[str, Any]) -> None:
        """From the host's event loop."""
        if self._pending.qsize() >= self.limit and message.get("type") == DELTA_MESSAGE_TYPE:
            self._dropped += 1
            return
        self._pending.put_nowait((group, message))

    def put_threadsafe(self, group: str, message: dict[str, Any]) -> None:
        """From a database thread of the host (a service's on-commit broadcast)."""
        self._loop.call_soon_threadsafe(self.put, group, message)

    async def close(self, timeout: float) -> None:
        """Send everything put so far, then stop (within ``timeout``: a channel layer that hangs
        must not keep the host from closing)."""
        self._pending.put_nowait(_CLOSE)
        _, stuck = await asyncio.wait({self._sender}, timeout=timeout)
        if stuck:
            self._sender.cancel()
            logger.warning("channel layer: live messages left unsent at close")

    async def _send_until_closed(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while not self._pending.empty():
                batch.append(self._pending.get_nowait())
            closing = _CLOSE in batch
            if self._dropped:
                logger.warning("channel layer behind: %d live messages dropped", self._dropped)
                self._dropped = 0
            messages = coalesce_deltas([item for item in batch if item is not _CLOSE])
            try:
                await _group_send_many(self.layer, messages)
            except Exception:
                logger.warning("channel layer: %d messages not sent", len(messages), exc_info=True)
            if closing:
                return


_CLOSE = object()


def coalesce_deltas(batch: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Join a message's consecutive deltas into one, in place: when the layer falls behind, a
    turn's backlog goes out as one delta instead of many, and nothing changes order."""
    coalesced: list[tuple[str, dict[str, Any]]] = []
    last_of_group: dict[str, int] = {}
    for group, message in batch:
        previous = last_of_group.get(group)
        if previous is not None and message.get("type") == DELTA_MESSAGE_TYPE:
            earlier = coalesced[previous][1]
            if earlier.get("type") == DELTA_MESSAGE_TYPE and _continues(earlier, message):
                joined = dict(
                    earlier["delta"], text=earlier["delta"]["text"] + message["delta"]["text"]
                )
                coalesced[previous] = (group, {"type": DELTA_MESSAGE_TYPE, "delta": joined})
                continue
        last_of_group[group] = len(coalesced)
        coalesced.append((group, message))
    return coalesced


def _continues(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    first, second = earlier["delta"], later["delta"]
    return (
        first["seq"] == second["seq"] and first["offset"] + len(first["text"]) == second["offset"]
    )


async def _group_send_many(layer, batch: list[tuple[str, dict[str, Any]]]) -> None:
    if not batch:
        return
    send_many = getattr(layer, "group_send_many", None)
    if send_many is not None:
        await send_many(batch)
        return
    # One group at a time keeps a session's messages in order; the groups go out side by
    # side, so a hundred sessions do not wait on each other's round trips.
    by_group: dict[str, list[dict[str, Any]]] = {}
    for group, message in batch:
        by_group.setdefault(group, []).append(message)
    await asyncio.gather(
        *(_send_in_order(layer, group, messages) for group, messages in by_group.items())
    )


async def _send_in_order(layer, group: str, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        await layer.group_send(group, message)


def signal_turn_on_commit(turn: Turn) -> None:
    """Tell the host running ``turn`` to stop it now rather than at its next look at the row."""
    if not turn.worker_id:
        return
    message: ControlPayload = {
        "type": CONTROL_MESSAGE_TYPE,
        "turn": turn.pk,
        "action": "cancel",
        "reason": turn.stop_reason,
    }
    channel = host_control_channel(turn.worker_id)
    transaction.on_commit(lambda: send_now("send", channel, message))


def offer_to_hosts(turn_id: int) -> None:
    """Tell the turn hosts that ``turn_id`` is queued, right after the broker was given it: a
    host with room takes its lease at once instead of waiting for the broker's next poll, and
    the broker's delivery then finds it running (the broker stays the backstop)."""
    send_now("group_send", TURN_HOSTS_GROUP, {"type": TURN_QUEUED_MESSAGE_TYPE, "turn": turn_id})


def sessions_changed_on_commit(session: AgentSession) -> None:
    group = owner_group(session.owner_id)
    message = {"type": SESSIONS_CHANGED_MESSAGE_TYPE, "session": str(session.pk)}
    transaction.on_commit(lambda: send_now("group_send", group, message))


def session_created_on_commit(session: AgentSession) -> None:
    """Tell the owner's open lists of the new session (made in another tab, or by the API)."""
    sessions_changed_on_commit(session)


def session_renamed_on_commit(session: AgentSession) -> None:
    """Tell the session's open pages and its owner's lists its new title."""
    message: SessionTitlePayload = {
        "type": SESSION_TITLE_MESSAGE_TYPE,
        "title": session.title,
        "name": str(session),
    }
    group = session_group(session.pk)
    transaction.on_commit(lambda: send_now("group_send", group, message))
    sessions_changed_on_commit(session)


def session_deleted_on_commit(session: AgentSession) -> None:
    """Tell the session's open pages and its owner's lists that it is gone. Called before the
    delete, so that these go out after the events of the stop that came first."""
    group = session_group(session.pk)
    transaction.on_commit(
        lambda: send_now("group_send", group, {"type": SESSION_DELETED_MESSAGE_TYPE})
    )
    sessions_changed_on_commit(session)


def approval_queue_changed_on_commit() -> None:
    """Tell open approval queues to refresh: a request was created, decided or withdrawn."""
    transaction.on_commit(
        lambda: send_now("group_send", APPROVAL_QUEUE_GROUP, {"type": APPROVAL_QUEUE_MESSAGE_TYPE})
    )


def login_ended_on_commit(session_key: str) -> None:
    """Close the sockets opened with this login (it was logged out)."""
    group = login_group(session_key)
    transaction.on_commit(lambda: send_now("group_send", group, {"type": LOGIN_ENDED_MESSAGE_TYPE}))


async def turn_end(
    session_id, turn_id: int, *, timeout: float, ended: Callable[[], Awaitable[bool]]
) -> None:
    """Return once the turn's terminal status goes out to its session's group, or ``ended()``
    (asked once the group is joined, so the status cannot go by between the two) says it is over
    already, or after ``timeout`` seconds. It holds no thread while it waits.

    The time limit is a message this waiter sends itself: reads of the layer are shared by every
    socket of the process, and cancelling one could drop a message meant for another.
    """
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = session_group(session_id)
    await layer.group_add(group, channel)
    alarm = asyncio.ensure_future(_wake_after(layer, channel, timeout))
    try:
        if await ended():
            return
        while True:
            message = await layer.receive(channel)
            if message.get("type") == WAIT_OVER_MESSAGE_TYPE or _ends_turn(message, turn_id):
                return
    finally:
        alarm.cancel()
        await layer.group_discard(group, channel)


async def _wake_after(layer, channel: str, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await layer.send(channel, {"type": WAIT_OVER_MESSAGE_TYPE})


def _ends_turn(message: dict[str, Any], turn_id: int) -> bool:
    event = message.get("event") or {}
    return (
        message.get("type") == EVENT_MESSAGE_TYPE
        and event.get("turn") == turn_id
        and event.get("kind") == EventKind.STATUS
        and (event.get("data") or {}).get("status") in TERMINAL_STATUSES
    )
