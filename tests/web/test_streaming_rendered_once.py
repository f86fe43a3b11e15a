"""A streaming answer's Markdown is rendered once per checkpoint, however many pages watch it,
and only where it changed (the blocks closed since the last checkpoint, and the open block at its
end): the cost of a token does not grow with the answer or with its viewers. The final message's
HTML is the whole text rendered in one piece."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from agentproj.vocabulary import EventKind
from sessions_app.core import leases, rendering, sessions
from tests.sockets import resumed_session_socket, session_cookie
from tests.turn_states import running_turn

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

WATCHING_SOCKETS = 3

# Each checkpoint's text so far; the numbers say how many blocks closed since the one before.
CHECKPOINTS = [
    ("The plan has", 0),
    ("The plan has **three** steps.\n\nFirst", 1),
    ("The plan has **three** steps.\n\nFirst, a list:\n\n- one\n- two\n\n```py\nx = 1\n\n", 2),
    (
        "The plan has **three** steps.\n\nFirst, a list:\n\n- one\n- two\n\n```py\nx = 1\n\n"
        "y = 2\n```\n\nDone",
        1,
    ),
]
FINAL = CHECKPOINTS[-1][0] + ".\n"


def test_each_checkpoint_is_rendered_once_for_all_sockets_and_the_final_text_whole(
    user, monkeypatch
):
    session = sessions.session_create(owner=user, title="Rendered once")
    turn, lease = running_turn(user, session)
    cookie = session_cookie(user)
    whole = rendering.assistant_html
    rendered: list[str] = []

    def counted(text: str) -> str:
        rendered.append(text)
        return whole(text)

    monkeypatch.setattr(rendering, "assistant_html", counted)

    def checkpoint(event_id, text: str, *, streaming: bool = True):
        return leases.turn_save_progress(
            turn_id=turn.pk,
            lease_token=lease,
            assistant_event_id=event_id,
            assistant_text=text,
            streaming=streaming,
        )

    async def assistant_messages(socket, count: int) -> list[dict]:
        seen = []
        while len(seen) < count:
            message = await socket.receive_json_from(timeout=10)
            if message["type"] == "checkpoint" or (
                message["type"] == "event"
                and message["event"]["kind"] == EventKind.ASSISTANT_MESSAGE
            ):
                seen.append(message)
        return seen

    async def scenario():
        async with (
            resumed_session_socket(session.pk, cookie, after_seq=10**6) as first,
            resumed_session_socket(session.pk, cookie, after_seq=10**6) as second,
            resumed_session_socket(session.pk, cookie, after_seq=10**6) as third,
        ):
            sockets = [first, second, third]
            for socket in sockets:
                assert (await socket.receive_json_from(timeout=5))["type"] == "replayed"
            renders_per_checkpoint, frames = [], []
            event_id = None
            for text, _ in CHECKPOINTS:
                before = len(rendered)
                event = await database_sync_to_async(checkpoint)(event_id, text)
                event_id = event.pk
                for socket in sockets:
                    frames.extend(await assistant_messages(socket, 1))
                renders_per_checkpoint.append(len(rendered) - before)
            await database_sync_to_async(checkpoint)(event_id, FINAL, streaming=False)
            finals = [(await assistant_messages(socket, 1))[0] for socket in sockets]
            return renders_per_checkpoint, frames, finals

    renders_per_checkpoint, frames, finals = async_to_sync(scenario)()

    # The open block at the end once, and the blocks closed since the checkpoint before (if
    # any) once: never once per socket.
    assert renders_per_checkpoint == [1 + (1 if closed else 0) for _, closed in CHECKPOINTS]
    assert rendered[: sum(renders_per_checkpoint)] == [
        "The plan has",
        "The plan has **three** steps.\n\n",
        "First",
        "First, a list:\n\n- one\n- two\n\n",
        "```py\nx = 1\n\n",
        "```py\nx = 1\n\ny = 2\n```\n\n",
        "Done",
    ]
    # The first checkpoint goes whole; each later one only with what the page lacks: the text
    # since the one before, the HTML of the blocks closed since, and the open block.
    first_frames, later_frames = frames[:WATCHING_SOCKETS], frames[WATCHING_SOCKETS:]
    assert all(frame["type"] == "event" for frame in first_frames)
    for index, frame in enumerate(later_frames):
        text, closed = CHECKPOINTS[1 + index // WATCHING_SOCKETS]
        before = CHECKPOINTS[index // WATCHING_SOCKETS][0]
        assert frame["type"] == "checkpoint"
        assert (frame["offset"], frame["text"]) == (len(before), text[len(before) :])
        assert frame["rendered"] == len(text.rstrip())
        assert "replace" not in frame
        closed_before = rendering.closed_length(before)
        closed_now = rendering.closed_length(text)
        assert frame["html"] == (whole(text[closed_before:closed_now]) if closed else "")
        tail = whole(text[closed_now:])
        assert frame["open_html"] == f'<div class="open-block">{tail}</div>'
    for final in finals:
        assert final["event"]["data"] == {"text": FINAL, "streaming": False}
        assert final["event"]["html"] == whole(FINAL)
        assert whole(FINAL) in final["fragment"]


def test_a_streaming_message_reads_as_the_whole_text_rendered():
    text = "Some **bold** words.\n\nAnd a <b>tail</b> in **bold"
    renders = rendering.StreamingRenders()
    assert renders.html(("turn", 1), text) == (
        "<p>Some <strong>bold</strong> words.</p>\n<p>And a &lt;b&gt;tail&lt;/b&gt; in **bold</p>"
    )
    assert renders.html(("turn", 1), text) == rendering.assistant_html(text)


def test_a_fence_left_open_closes_nothing_after_it():
    assert rendering.closed_length("Intro.\n\n```\ncode\n\nmore code\n") == len("Intro.\n\n")
    assert rendering.closed_length("Intro.\n\n```\ncode\n```\n\nNext") == len(
        "Intro.\n\n```\ncode\n```\n\n"
    )
