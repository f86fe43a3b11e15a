"""What one page holds of each answer still streaming, so that a checkpoint sends it only what
it lacks.

A checkpoint carries the answer's whole text so far, a few times a second. Sent whole, text and
HTML, to every page, a long answer would cost more bytes (and JSON) at each checkpoint the
longer it grew. A page that already shows the answer needs only the HTML of the blocks closed
since its last checkpoint, the open block at the end (redrawn), and the text that deltas did not
bring it. A socket keeps, for each streaming answer it sent whole, how much of the text its page
holds and how much of that the page holds as closed blocks; a delta the page already has is not
sent again, and one that overlaps is cut to what is new.

Lengths count code points, as the deltas' offsets do; the page converts.
"""

from dataclasses import dataclass

from agentproj.vocabulary import EventKind
from sessions_app.core.broadcast import DeltaPayload
from sessions_app.core.events import EventPayload
from sessions_app.web.timeline.render import open_block, streaming_parts


@dataclass
class PageCopy:
    # How much of the answer's text the page holds.
    length: int
    # How much of it the page holds rendered as closed blocks.
    closed: int


class StreamsOnPage:
    def __init__(self) -> None:
        self._copies: dict[int, PageCopy] = {}

    def sent_whole(self, event: EventPayload) -> None:
        """``event`` went to the page whole (its item with all its HTML)."""
        if event["kind"] != EventKind.ASSISTANT_MESSAGE:
            return
        if not event["data"].get("streaming"):
            # Deltas still in flight go on from where the live text ends (a client may follow
            # only that); the page, holding the final text, ignores them.
            return
        text = str(event["data"].get("text") or "")
        self._copies[event["seq"]] = PageCopy(
            length=len(text), closed=streaming_parts(event).closed
        )

    def checkpoint(self, event: EventPayload) -> dict | None:
        """The ``checkpoint`` message for a streaming answer the page shows; None for any other
        event, which goes whole."""
        copy = self._copies.get(event["seq"])
        if (
            copy is None
            or event["kind"] != EventKind.ASSISTANT_MESSAGE
            or not event["data"].get("streaming")
        ):
            return None
        text = str(event["data"].get("text") or "")
        parts = streaming_parts(event)
        added = parts.closed_after(copy.closed) if copy.closed <= parts.closed else None
        message = {
            "type": "checkpoint",
            "seq": event["seq"],
            "turn": event["turn"],
            "html": parts.closed_html if added is None else added,
            "open_html": open_block(parts.open_html),
            # The rendering covers the text but the white space it ends with.
            "rendered": len(text.rstrip()),
        }
        if added is None:
            message["replace"] = True
        if copy.length < len(text):
            message["offset"] = copy.length
            message["text"] = text[copy.length :]
            copy.length = len(text)
        copy.closed = parts.closed
        return message

    def delta(self, delta: DeltaPayload) -> DeltaPayload | None:
        """``delta`` as the page needs it: None when it holds that text already or the delta
        does not reach where its text ends (the next checkpoint brings it)."""
        copy = self._copies.get(delta["seq"])
        if copy is None:
            return delta
        end = delta["offset"] + len(delta["text"])
        if delta["offset"] > copy.length or end <= copy.length:
            return None
        new = delta["text"][copy.length - delta["offset"] :]
        trimmed = {**delta, "offset": copy.length, "text": new}
        copy.length = end
        return trimmed
