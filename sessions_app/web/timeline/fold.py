"""The chat page's state, folded from a session's events: the page is drawn from the fold of all
its events, and each socket keeps the fold of what it has sent to draw each live event with.

The fold keeps what an event's drawing depends on beyond the event itself: each turn's latest
status (its foot, and whether its approval cards may be decided), a sub-agent turn's parent and
task, each approval request with its decisions, the calls that were made (a progress line goes
inside its call) with their latest progress, what became of each call (its one line says whether
it waits, ran, failed or was refused, and who approved it), the session's grants as the events
tell them, and which version of a regenerated turn is shown. The kinds that draw only
themselves (messages, notices) fold to nothing, so a socket seeds its fold with the
``STATE_KINDS`` events alone.

Pure: no database, no templates. Folding an event twice, or two events in either order,
gives the same state, since a socket can receive an event again (a replay meets the live
stream) or out of order (two processes broadcast, each when its own write commits).
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentproj.vocabulary import TERMINAL_STATUSES, EventKind, StopReason, TurnStatus
from sessions_app.core.events import EventPayload
from sessions_app.web.timeline import words


@dataclass
class TurnState:
    id: int
    parent: int | None = None
    task: str = ""
    # The data of its latest status event, and that event's seq.
    status: dict[str, Any] | None = None
    status_seq: int = 0
    approvals: list[Any] = field(default_factory=list)


@dataclass
class VersionGroup:
    """A turn's versions as the latest ``version_shown`` event about them tells it."""

    versions: list[int]
    shown: int
    seq: int


@dataclass(frozen=True)
class VersionNav:
    """Where a version stands among its turn's: "2/3", and the versions either side."""

    position: int
    count: int
    previous: int | None
    next: int | None


@dataclass
class ApprovalState:
    id: Any
    turn: int | None = None
    # The approval_requested event's data; None while only a decision on it has been folded.
    requested: dict[str, Any] | None = None
    # The approval_decided events' data by seq.
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class GrantState:
    id: int
    tool: str = ""
    match: dict[str, Any] = field(default_factory=dict)
    granted_by: str = ""
    created_at: datetime | None = None
    revoked_by: str = ""
    revoked_at: datetime | None = None
    seq: int = 0

    @property
    def made(self) -> bool:
        return self.created_at is not None


@dataclass
class CallState:
    """A tool call as its one line on the page tells it: made (``seq`` of its tool_call event,
    0 while only a later event about it has been folded), perhaps held for approval, then
    answered by its result."""

    seq: int = 0
    tool: str = ""
    made_at: datetime | None = None
    approval: Any = None
    # The decision of a call a grant let through (it has no request, so no card).
    let_through: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    answered_at: datetime | None = None


@dataclass(frozen=True)
class Card:
    """Where an approval request stands: ``state`` is pending, approved, rejected, expired or
    cancelled; ``decidable`` while it is pending and its turn waits for approval."""

    id: Any
    state: str
    text: str
    decidable: bool
    # The arguments that stand (an approver's edit replaces the requested ones).
    arguments: dict[str, Any]
    # The names a grant may match on, from the requested arguments: the card's controls are
    # drawn once, with the request.
    fields: list[str]
    # Who approved it, or who rejected it, once it is decided.
    deciders: tuple[str, ...] = ()
    # Until when it may be decided, while it waits.
    expires_at: datetime | None = None

    @property
    def arguments_json(self) -> str:
        # In the order the page shows them (``words.pretty``): the editor starts from these.
        return json.dumps(self.arguments, ensure_ascii=False, sort_keys=True)


class Timeline:
    """The fold of a session's events so far (``apply`` one more), and what it says of a turn
    and of an approval card."""

    def __init__(self) -> None:
        self.turns: dict[int, TurnState] = {}
        self.approvals: dict[Any, ApprovalState] = {}
        # Each turn's calls by their id: models number calls afresh in every turn.
        self.calls: dict[tuple[int, Any], CallState] = {}
        # The latest tool_progress event of each call.
        self.progress: dict[Any, EventPayload] = {}
        self.grants: dict[int, GrantState] = {}
        # Groups of versions by their first turn, and the group of each version.
        self.version_groups: dict[int, VersionGroup] = {}
        self.group_of: dict[int, int] = {}

    def apply(self, event: EventPayload) -> None:
        fold = _FOLDS.get(event["kind"])
        if fold is not None:
            fold(self, event)

    # Reads

    def call(self, turn_id: int | None, call_id: Any) -> CallState | None:
        """The call a tool event of ``turn_id`` is about, once its tool_call event is folded."""
        call = self.calls.get((turn_id, call_id))
        return call if call is not None and call.seq else None

    def turn_calls(self, turn_id: int | None) -> list[CallState]:
        return [call for (turn, _), call in self.calls.items() if turn == turn_id and call.seq]

    def turn(self, turn_id: int | None) -> TurnState | None:
        return self.turns.get(turn_id) if turn_id is not None else None

    def card(self, approval_id: Any) -> Card | None:
        approval = self.approvals.get(approval_id)
        if approval is None or approval.requested is None:
            return None
        decisions = [approval.decisions[seq] for seq in sorted(approval.decisions)]
        latest = decisions[-1] if decisions else None
        final = latest is not None and latest.get("status") != "pending"
        turn = self.turn(approval.turn)
        status = (turn.status if turn else None) or {}
        if latest is not None:
            state = latest.get("decision") if final else "pending"
        elif status.get("status") in TERMINAL_STATUSES:
            # Its turn ended before anyone decided it.
            expired = status.get("stop_reason") == StopReason.APPROVAL_EXPIRED
            state = "expired" if expired else "cancelled"
        else:
            state = "pending"
        requested = approval.requested.get("arguments") or {}
        arguments = requested
        for decision in decisions:
            arguments = decision.get("edited_arguments") or arguments
        return Card(
            id=approval_id,
            state=state,
            text=words.card_text(state, latest, approval.requested),
            decidable=not final and status.get("status") == TurnStatus.WAITING_FOR_APPROVAL,
            arguments=arguments,
            fields=sorted(requested),
            expires_at=_expiry(approval.requested) if state == "pending" else None,
            deciders=tuple(
                dict.fromkeys(
                    str(decision.get("decided_by"))
                    for decision in decisions
                    if final and decision.get("decision") == state
                )
            ),
        )

    def turn_cards(self, turn_id: int | None) -> list[Card]:
        turn = self.turn(turn_id)
        cards = (self.card(approval_id) for approval_id in (turn.approvals if turn else ()))
        return [card for card in cards if card is not None]

    def call_line(self, turn_id: int | None, call: CallState) -> "CallLine":
        card = self.card(call.approval) if call.approval is not None else None
        turn = self.turn(turn_id)
        status = ((turn.status if turn else None) or {}).get("status")
        return call_line(call, card, ended=status if status in TERMINAL_STATUSES else None)

    def version_group(self, turn_id: int | None) -> VersionGroup | None:
        first = self.group_of.get(turn_id) if turn_id is not None else None
        return self.version_groups.get(first) if first is not None else None

    def hidden(self, turn_id: int | None) -> bool:
        """Whether another version of the turn is shown instead."""
        group = self.version_group(turn_id)
        return group is not None and group.shown != turn_id

    def version_nav(self, turn_id: int | None) -> VersionNav | None:
        group = self.version_group(turn_id)
        if group is None or len(group.versions) < 2:
            return None
        at = group.versions.index(turn_id)
        return VersionNav(
            position=at + 1,
            count=len(group.versions),
            previous=group.versions[at - 1] if at > 0 else None,
            next=group.versions[at + 1] if at + 1 < len(group.versions) else None,
        )

    def grants_made(self) -> list[GrantState]:
        """The session's grants, revoked ones too, oldest first."""
        return sorted((g for g in self.grants.values() if g.made), key=lambda g: g.seq)

    # Folds, one per kind that changes the state

    def _status(self, event: EventPayload) -> None:
        turn = self._turn(event["turn"])
        data = event["data"]
        if event["seq"] > turn.status_seq:
            turn.status, turn.status_seq = data, event["seq"]
        turn.parent = turn.parent or data.get("parent")
        turn.task = turn.task or str(data.get("task") or "")

    def _tool_call(self, event: EventPayload) -> None:
        call = self._call(event)
        call.seq, call.made_at = event["seq"], _time(event)
        call.tool = str(event["data"].get("tool") or "")

    def _tool_result(self, event: EventPayload) -> None:
        call = self._call(event)
        call.result, call.answered_at = event["data"], _time(event)

    def _tool_progress(self, event: EventPayload) -> None:
        call = event["data"].get("tool_call_id")
        latest = self.progress.get(call)
        if latest is None or latest["seq"] < event["seq"]:
            self.progress[call] = event

    def _approval_requested(self, event: EventPayload) -> None:
        data = event["data"]
        approval = self._approval(data.get("approval"), event["turn"])
        approval.requested = data
        self._call(event).approval = data.get("approval")

    def _approval_decided(self, event: EventPayload) -> None:
        data = event["data"]
        # A call a grant let through has a decision of its own, and no request.
        if data.get("approval") is not None:
            self._approval(data["approval"], event["turn"]).decisions[event["seq"]] = data
        elif data.get("tool_call_id") is not None:
            self._call(event).let_through = data
        made = data.get("grant")
        if isinstance(made, dict):
            grant = self._grant(made.get("id"))
            grant.tool, grant.match = str(data.get("tool") or ""), made.get("match") or {}
            grant.granted_by = str(data.get("decided_by") or "")
            grant.created_at, grant.seq = _time(event), event["seq"]

    def _grant_revoked(self, event: EventPayload) -> None:
        grant = self._grant(event["data"].get("grant"))
        grant.revoked_by = str(event["data"].get("revoked_by") or "")
        grant.revoked_at = _time(event)

    def _version_shown(self, event: EventPayload) -> None:
        versions = [int(turn) for turn in event["data"].get("versions") or ()]
        if not versions:
            return
        first = versions[0]
        known = self.version_groups.get(first)
        if known is not None and known.seq >= event["seq"]:
            return
        self.version_groups[first] = VersionGroup(
            versions=versions, shown=int(event["data"]["shown"]), seq=event["seq"]
        )
        for turn in versions:
            self.group_of[turn] = first

    def _turn(self, turn_id: int) -> TurnState:
        if turn_id not in self.turns:
            self.turns[turn_id] = TurnState(id=turn_id)
        return self.turns[turn_id]

    def _call(self, event: EventPayload) -> CallState:
        key = (event["turn"], event["data"].get("tool_call_id"))
        if key not in self.calls:
            self.calls[key] = CallState()
        return self.calls[key]

    def _approval(self, approval_id: Any, turn_id: int | None) -> ApprovalState:
        if approval_id not in self.approvals:
            self.approvals[approval_id] = ApprovalState(id=approval_id, turn=turn_id)
            if turn_id is not None:
                self._turn(turn_id).approvals.append(approval_id)
        return self.approvals[approval_id]

    def _grant(self, grant_id: int) -> GrantState:
        if grant_id not in self.grants:
            self.grants[grant_id] = GrantState(id=grant_id)
        return self.grants[grant_id]


@dataclass(frozen=True)
class CallLine:
    """A tool use's one line: ``state`` (running, waiting, done, failed, not-run, unfinished)
    styles it, ``text`` tells it."""

    state: str
    text: str


def call_line(call: CallState, card: Card | None, *, ended: str | None) -> CallLine:
    """ "Used get_time · 0.2 s", "send_email — approved by carol · 1.4 s", "send_email —
    rejected by carol", "send_email — waiting for approval"."""
    tool = call.tool
    deciders = _deciders(call, card)
    result = call.result
    if result is not None:
        if result.get("not_run") == "rejected":
            by = f" by {deciders}" if deciders else ""
            return CallLine("not-run", f"{tool} — rejected{by}")
        if result.get("not_run"):
            return CallLine("not-run", f"{tool} — not run, the rules refused it")
        if result.get("ok") is False:
            return CallLine("failed", f"{tool} failed")
        took = ""
        if call.made_at and call.answered_at:
            took = f" · {(call.answered_at - call.made_at).total_seconds():.1f} s"
        if deciders:
            return CallLine("done", f"{tool} — approved by {deciders}{took}")
        return CallLine("done", f"Used {tool}{took}")
    if card is not None and card.state == "pending" and not ended:
        return CallLine("waiting", f"{tool} — waiting for approval")
    if card is not None and card.state in ("rejected", "expired", "cancelled"):
        verb = {"rejected": "rejected", "expired": "approval expired", "cancelled": "not run"}
        by = f" by {deciders}" if card.state == "rejected" and deciders else ""
        return CallLine("not-run", f"{tool} — {verb[card.state]}{by}")
    if ended == TurnStatus.STOPPED:
        return CallLine("unfinished", f"{tool} — stopped")
    if ended:
        return CallLine("unfinished", f"{tool} — did not finish")
    if deciders:
        return CallLine("running", f"{tool} — approved by {deciders}, running…")
    return CallLine("running", f"Using {tool}…")


def _deciders(call: CallState, card: Card | None) -> str:
    """Who approved or rejected the call: its card's deciders, or the granter whose grant let
    it through."""
    if card is not None:
        return " and ".join(card.deciders)
    if call.let_through is not None:
        return f"{call.let_through.get('decided_by')}'s grant for this session"
    return ""


_FOLDS = {
    EventKind.STATUS: Timeline._status,
    EventKind.TOOL_CALL: Timeline._tool_call,
    EventKind.TOOL_PROGRESS: Timeline._tool_progress,
    EventKind.TOOL_RESULT: Timeline._tool_result,
    EventKind.APPROVAL_REQUESTED: Timeline._approval_requested,
    EventKind.APPROVAL_DECIDED: Timeline._approval_decided,
    EventKind.APPROVAL_GRANT_REVOKED: Timeline._grant_revoked,
    EventKind.VERSION_SHOWN: Timeline._version_shown,
}
STATE_KINDS = tuple(_FOLDS)


def _expiry(requested: dict[str, Any]) -> datetime | None:
    expires = requested.get("expires_at")
    return datetime.fromisoformat(expires) if expires else None


def _time(event: EventPayload) -> datetime:
    return datetime.fromisoformat(event["created_at"])


def fold(events: Iterable[EventPayload]) -> Timeline:
    timeline = Timeline()
    for event in events:
        timeline.apply(event)
    return timeline
