"""The chat page's timeline drawn through its partials, from the fold (``fold.Timeline``).

Every event kind but ``version_shown`` has its partial (``templates/sessions/events/<kind>.html``;
that one redraws the feet of its turn's versions). The page draws the fold of all its events
(``page``); a socket draws each live event from the fold of what it has sent
(``live_fragments``), through the same partials, so the page script only places what it is sent,
appends live text deltas and drives the buttons.

What one event changes elsewhere on the page travels with it as ``updates``: fragments that
replace the element with the same id (an approval card's state after a decision or a status of
its turn, the session's grants after one is made or revoked, the feet of a turn's versions
after another is shown), and for ``version_shown`` which turns to hide and which to show.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from agentproj.vocabulary import (
    ACTIVE_STATUSES,
    PAGE_LIMITS,
    PAGE_TEXTS,
    STOPPABLE_STATUSES,
    TERMINAL_STATUSES,
    TURN_STATUS_LABELS,
    EventKind,
    TurnStatus,
)
from sessions_app.core import rendering
from sessions_app.core.events import EventPayload
from sessions_app.core.usage import readable_cost
from sessions_app.web.timeline import words
from sessions_app.web.timeline.fold import (
    CallState,
    Card,
    Timeline,
    TurnState,
    VersionNav,
    fold,
)

S = TurnStatus


# Turns


def foot_context(
    turn_id: int, status: dict[str, Any] | None, seq: int, versions: VersionNav | None = None
) -> dict[str, Any]:
    """A turn's foot: its status chip, what it used and cost once it ended (its tokens marked
    when estimated), for an ended top-level turn
    Regenerate (and for a stopped or failed one Edit and resend; the page offers them on the
    last turn only), the way to its other versions, and for a message waiting in line its
    Cancel."""
    data = status or {"status": S.QUEUED}
    code = data.get("status", S.QUEUED)
    label = TURN_STATUS_LABELS.get(code, code)
    if code == S.FAILED and data.get("error"):
        label = f"{label}: {data['error']}"
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    cost = usage.get("cost")
    duration_ms = data.get("duration_ms")
    top_level = not data.get("parent")
    return {
        "turn_id": turn_id,
        "seq": seq,
        "status": code,
        "label": label,
        "stop_reason": str(data.get("stop_reason") or "").replace("_", " "),
        "active": code in ACTIVE_STATUSES,
        "stoppable": code in STOPPABLE_STATUSES,
        "tokens": prompt_tokens + completion_tokens,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cached_tokens": int(usage.get("cached_tokens") or 0),
        "estimated": bool(usage.get("estimated")),
        "cost": readable_cost(cost) if cost else "",
        "currency": usage.get("currency", ""),
        "seconds": None if duration_ms is None else f"{duration_ms / 1000:.1f}",
        "regenerate": code in TERMINAL_STATUSES and top_level,
        "edit": code in (S.STOPPED, S.FAILED) and top_level,
        "versions": versions,
        # A message waiting in line behind the running turn can be taken back before it runs.
        "withdrawable": code == S.PENDING and top_level,
    }


def render_foot(
    turn_id: int, status: dict[str, Any] | None, seq: int, versions: VersionNav | None = None
) -> str:
    return render_to_string(
        "sessions/events/status.html", foot_context(turn_id, status, seq, versions)
    )


@dataclass
class TurnNode:
    """A turn as the page draws it: where its first event is, inside its parent's if it is a
    sub-agent's, with its items and its foot from its latest status."""

    id: int
    seq: int
    state: TurnState | None
    items: list["str | TurnNode"] = field(default_factory=list)
    # Another version of the turn is shown instead (``fold.Timeline.hidden``).
    hidden: bool = False
    versions: VersionNav | None = None

    @classmethod
    def of(cls, timeline: Timeline, turn_id: int, seq: int) -> "TurnNode":
        return cls(
            id=turn_id,
            seq=seq,
            state=timeline.turn(turn_id),
            hidden=timeline.hidden(turn_id),
            versions=timeline.version_nav(turn_id),
        )

    @property
    def parent(self) -> int | None:
        return self.state.parent if self.state else None

    @property
    def task(self) -> str:
        return self.state.task if self.state else ""

    def render(self) -> SafeString:
        items = [item.render() if isinstance(item, TurnNode) else item for item in self.items]
        status = self.state.status if self.state else None
        seq = self.state.status_seq if self.state else 0
        foot = render_foot(self.id, status, seq, self.versions)
        return mark_safe(
            render_to_string("sessions/_turn.html", {"turn": self, "items": items, "foot": foot})
        )


def render_shell(timeline: Timeline, event: EventPayload) -> str:
    """The turn of ``event``, without items, for the page to draw the event into when it has
    not seen the turn yet (the turn's first event is this one)."""
    return TurnNode.of(timeline, event["turn"], event["seq"]).render()


def render_turn_foot(timeline: Timeline, turn_id: int) -> str:
    """A turn's foot as the fold has it: its latest status and its versions."""
    state = timeline.turn(turn_id)
    status, seq = (state.status, state.status_seq) if state else (None, 0)
    return render_foot(turn_id, status, seq, timeline.version_nav(turn_id))


# The kinds drawn in a turn's foot rather than as items of their own.
FOOT_KINDS = frozenset({EventKind.STATUS, EventKind.VERSION_SHOWN})


# Items


def render_card_state(card: Card) -> str:
    return render_to_string("sessions/_approval_state.html", {"approval": card})


def render_progress(event: EventPayload) -> str:
    return render_to_string(
        "sessions/events/tool_progress.html",
        {
            "seq": event["seq"],
            "call": event["data"].get("tool_call_id"),
            "text": words.progress_text(event["data"]),
        },
    )


def place_of(event: EventPayload, timeline: Timeline) -> str | None:
    """The id of the list an event is drawn into when it belongs inside another event's item
    rather than in its turn: a call's result and approval card go into the call's one line, a
    decision into its card. None for the turn's own list."""
    kind, data = event["kind"], event["data"]
    if (
        kind in (EventKind.APPROVAL_DECIDED, EventKind.APPROVAL_ESCALATED)
        and timeline.card(data.get("approval")) is not None
    ):
        return f"approval-{data['approval']}-decisions"
    if kind not in CALL_KINDS:
        return None
    call = timeline.call(event["turn"], data.get("tool_call_id"))
    if call is None:
        return None
    part = "progress" if kind == EventKind.TOOL_PROGRESS else "results"
    if kind in (EventKind.APPROVAL_REQUESTED, EventKind.APPROVAL_DECIDED):
        part = "cards"
    return f"event-{call.seq}-{part}"


# The kinds drawn inside their call's line, when the call is known.
CALL_KINDS = frozenset(
    {
        EventKind.TOOL_PROGRESS,
        EventKind.TOOL_RESULT,
        EventKind.APPROVAL_REQUESTED,
        EventKind.APPROVAL_DECIDED,
    }
)


def render_call_line(timeline: Timeline, turn_id: int | None, call: CallState) -> str:
    return render_to_string(
        "sessions/_tool_line.html", {"seq": call.seq, "line": timeline.call_line(turn_id, call)}
    )


def render_item(
    event: EventPayload,
    timeline: Timeline,
    *,
    can_decide: bool,
    nested: dict[str, list[str]] | None = None,
    inbox: dict[str, Any] | None = None,
) -> str:
    """One event's item, through its kind's partial, as the fold has it. ``nested``: the items
    already drawn that go inside it, by the id of the list they go into (see ``place_of``).
    ``inbox``: an approval card drawn for the approver inbox, with what it shows around the
    card and the form that decides without JavaScript (``approvals_app.inbox.render``)."""
    kind, data = event["kind"], event["data"]
    if kind == EventKind.TOOL_PROGRESS:
        return render_progress(event)
    inside = nested or {}
    context: dict[str, Any] = {
        "event": event,
        "data": data,
        "can_decide": can_decide,
        "limits": PAGE_LIMITS,
        "texts": PAGE_TEXTS,
        "inbox": inbox,
    }
    if kind in (EventKind.USER_MESSAGE, EventKind.ASSISTANT_MESSAGE):
        context["at"] = datetime.fromisoformat(event["created_at"])
    if kind == EventKind.ASSISTANT_MESSAGE:
        # A final message brings the HTML stored with it; a streaming one's text so far is
        # rendered here, each of its blocks once for every page that shows it.
        html = event.get("html")
        if html is None:
            html = streaming_html(event)
        context["html"] = mark_safe(html)
    elif kind == EventKind.TOOL_CALL:
        call = timeline.call(event["turn"], data.get("tool_call_id"))
        latest = timeline.progress.get(data.get("tool_call_id"))
        context["arguments"] = words.pretty(data.get("arguments"))
        context["line"] = mark_safe(render_call_line(timeline, event["turn"], call))
        context["progress"] = mark_safe(render_progress(latest)) if latest else ""
        context["results"] = mark_safe("".join(inside.get(f"event-{event['seq']}-results", ())))
        context["cards"] = mark_safe("".join(inside.get(f"event-{event['seq']}-cards", ())))
    elif kind == EventKind.APPROVAL_REQUESTED:
        card = timeline.card(data.get("approval"))
        context["arguments"] = words.pretty(data.get("arguments"))
        context["approval"] = card
        context["approval_state"] = mark_safe(render_card_state(card))
        decisions = inside.get(f"approval-{data.get('approval')}-decisions", ())
        context["decisions"] = mark_safe("".join(decisions))
    elif kind == EventKind.TOOL_RESULT:
        context["result"] = words.pretty(data.get("result"))
    elif kind == EventKind.APPROVAL_DECIDED:
        context["text"] = words.decision_text(data)
        context["edited"] = words.pretty(data.get("edited_arguments"))
        context["rejudged"] = words.rejudged_text(data)
    return render_to_string(f"sessions/events/{kind}.html", context)


def render_grants(session_id, timeline: Timeline, *, can_decide: bool) -> str:
    grants = [
        {"grant": grant, "conditions": words.match_conditions(grant.match)}
        for grant in timeline.grants_made()
    ]
    return render_to_string(
        "sessions/_grants.html",
        {"session_id": session_id, "grants": grants, "can_decide": can_decide},
    )


# The whole page


@dataclass
class Page:
    html: SafeString
    grants: SafeString
    last_seq: int
    empty: bool


def page(events: list[EventPayload], *, session_id, can_decide: bool) -> Page:
    """The timeline of a session's events (in seq order): turns with their items, a sub-agent's
    turn inside its parent's, each turn's foot from its latest status, a call's result and
    approval card inside its line; and its grants."""
    timeline = fold(events)
    # Latest first, so that what goes inside an item is drawn before the item: a decision
    # before its card, the card and the result before their call.
    drawn: dict[int, str] = {}
    nested: dict[str, list[str]] = {}
    for event in reversed(events):
        kind = event["kind"]
        if kind in FOOT_KINDS:
            continue
        place = place_of(event, timeline)
        if kind == EventKind.TOOL_PROGRESS and place is not None:
            # Drawn inside its call, as the call's latest progress.
            continue
        item = render_item(event, timeline, can_decide=can_decide, nested=nested)
        if place is None:
            drawn[event["seq"]] = item
        else:
            nested.setdefault(place, []).insert(0, item)
    top: list[str | TurnNode] = []
    placed: dict[int, TurnNode] = {}
    for event in events:
        node = None
        if event["turn"] is not None:
            node = placed.get(event["turn"])
            if node is None:
                node = placed[event["turn"]] = TurnNode.of(timeline, event["turn"], event["seq"])
                parent = placed.get(node.parent) if node.parent else None
                (parent.items if parent is not None else top).append(node)
        if event["seq"] in drawn:
            (node.items if node is not None else top).append(drawn[event["seq"]])
    rendered = [item.render() if isinstance(item, TurnNode) else item for item in top]
    return Page(
        html=mark_safe("".join(rendered)),
        grants=mark_safe(render_grants(session_id, timeline, can_decide=can_decide)),
        last_seq=events[-1]["seq"] if events else 0,
        empty=not events,
    )


def streaming_parts(event: EventPayload) -> rendering.StreamingParts:
    return rendering.streaming.parts((event["turn"], event["seq"]), str(event["data"]["text"]))


def streaming_html(event: EventPayload) -> str:
    """A streaming answer's text so far: its closed blocks, then its open block apart, which the
    page redraws alone at the next checkpoint (``checkpoint_frame``)."""
    parts = streaming_parts(event)
    return rendering.joined(parts.closed_html, open_block(parts.open_html))


def open_block(html: str) -> str:
    return f'<div class="open-block">{html}</div>' if html else ""


# Live events


def live_fragments(
    timeline: Timeline, event: EventPayload, *, session_id, can_decide: bool
) -> dict[str, Any]:
    """What the page needs to show ``event``, drawn from ``timeline`` with the event folded in:
    ``fragment`` (its item, or its turn's foot for a status, or the progress line inside its
    call), ``place`` (the id of the list it goes into, when not its turn's: see ``place_of``),
    ``shell`` (its turn, for a page that has not seen the turn yet) and ``updates`` (see
    the module docstring)."""
    kind, data = event["kind"], event["data"]
    fragments: dict[str, Any] = {"updates": [], "place": place_of(event, timeline)}
    if event["turn"] is not None:
        fragments["shell"] = render_shell(timeline, event)
    if kind == EventKind.VERSION_SHOWN:
        # Nothing of its own to draw: the group's versions are hidden and shown, and their
        # feet redrawn with the way to each other.
        group = timeline.version_group(event["turn"])
        fragments["fragment"] = None
        if group is not None:
            fragments["versions"] = {
                "shown": group.shown,
                "hidden": [turn for turn in group.versions if turn != group.shown],
            }
            fragments["updates"] = [render_turn_foot(timeline, turn) for turn in group.versions]
    elif kind == EventKind.STATUS:
        fragments["fragment"] = render_foot(
            event["turn"], data, event["seq"], timeline.version_nav(event["turn"])
        )
        # A card may be decided only while its turn waits for approval, and one its turn ended
        # undecided was cancelled or expired; a call the turn ended without answering says so.
        cards = timeline.turn_cards(event["turn"])
        fragments["updates"] = [render_card_state(card) for card in cards]
        fragments["updates"] += [
            render_call_line(timeline, event["turn"], call)
            for call in timeline.turn_calls(event["turn"])
        ]
    else:
        fragments["fragment"] = render_item(event, timeline, can_decide=can_decide)
    call = timeline.call(event["turn"], data.get("tool_call_id"))
    if kind in CALL_KINDS and kind != EventKind.TOOL_PROGRESS and call is not None:
        fragments["updates"].append(render_call_line(timeline, event["turn"], call))
    if kind == EventKind.APPROVAL_DECIDED:
        card = timeline.card(data.get("approval"))
        if card is not None:
            fragments["updates"].append(render_card_state(card))
    if kind == EventKind.APPROVAL_GRANT_REVOKED or (
        kind == EventKind.APPROVAL_DECIDED and isinstance(data.get("grant"), dict)
    ):
        fragments["updates"].append(render_grants(session_id, timeline, can_decide=can_decide))
    return fragments
