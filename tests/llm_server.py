"""A real OpenAI-compatible HTTP endpoint on loopback for tests.

By default it answers like the built-in demo model (the same ``demo_llm.chunks``), streamed with
chunked transfer encoding at ``token_delay`` per word. Tests queue behaviours for the next
requests (``fail(500)``, ``rate_limit(retry_after)``, ``refuse_as_too_long(...)``,
``drop_after(n)``, ``stall()``, ``reply(...)`` (with the usage it reports, or none),
``cut_in_tool_call(...)``, ``insert_raw(...)``, ``stream_text(...)``) and read back what the
server saw: every request, and whether the client closed its stream early.
"""

import json
import select
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sessions_app import demo_model

# How long a stalled stream waits for the client to give up before the server gives up itself;
# only bounds a broken test.
STALL_BOUND = 120.0


@dataclass
class SeenRequest:
    body: dict[str, Any]
    started_at: float
    behaviour: str
    closed_by_client_at: float | None = None
    finished_at: float | None = None
    content_chunks_sent: int = 0
    content_chars_sent: int = 0


@dataclass
class Behaviour:
    kind: str  # "demo", "status", "drop", "stall", "reply", "cut_tool_call", "raw", "text"
    status: int = 200
    retry_after: str | None = None
    after_chunks: int = 0  # content chunks sent before a "drop" or a "raw" insert
    text: str = ""
    tool_call: dict[str, Any] | None = None
    raw: bytes = b""
    total_chars: int | None = None
    payload: dict[str, Any] | None = None  # the JSON body of a "status" answer
    # A "reply"'s usage chunk: the demo model's (None), this one instead, or none at all (False).
    usage: dict[str, Any] | bool | None = None


@dataclass
class ScriptedLLM:
    token_delay: float = 0.02
    queue: list[Behaviour] = field(default_factory=list)
    requests: list[SeenRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    # Queue behaviours for the next requests (then it goes back to the demo model).

    def fail(self, status: int = 500, times: int = 1) -> None:
        self.queue.extend(Behaviour("status", status=status) for _ in range(times))

    def rate_limit(self, retry_after: str) -> None:
        self.queue.append(Behaviour("status", status=429, retry_after=retry_after))

    def refuse_as_too_long(self, message: str, times: int = 1) -> None:
        """Answer 400 as OpenAI does to a request longer than the model's context window."""
        error = {
            "message": message,
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
        self.queue.extend(
            Behaviour("status", status=400, payload={"error": error}) for _ in range(times)
        )

    def drop_after(self, content_chunks: int, times: int = 1) -> None:
        self.queue.extend(Behaviour("drop", after_chunks=content_chunks) for _ in range(times))

    def stall(self, times: int = 1) -> None:
        """Answer 200 with the stream's headers and first chunk, then send nothing more until the
        client hangs up (a hung model server)."""
        self.queue.extend(Behaviour("stall") for _ in range(times))

    def reply(
        self,
        text: str = "",
        tool_call: dict[str, Any] | None = None,
        usage: dict[str, Any] | bool | None = None,
    ) -> None:
        """The next answer: ``text`` streamed word by word, then an optional tool call
        ``{"name": ..., "arguments": {...}}``; arguments given as a string are sent as that
        text, as a model may write it (``1e999``, ``NaN``, deep nesting). ``usage``: the usage
        chunk's ``usage`` at its end, or False for a server that reports none."""
        self.queue.append(Behaviour("reply", text=text, tool_call=tool_call, usage=usage))

    def cut_in_tool_call(self, tool_call: dict[str, Any]) -> None:
        """Start answering with ``tool_call``, then vanish after the first half of its
        arguments."""
        self.queue.append(Behaviour("cut_tool_call", tool_call=tool_call))

    def insert_raw(self, raw: bytes, after_chunks: int) -> None:
        """The demo answer, with ``raw`` bytes written into the stream once, after
        ``after_chunks`` content chunks (then the answer goes on)."""
        self.queue.append(Behaviour("raw", raw=raw, after_chunks=after_chunks))

    def stream_text(self, piece: str, total_chars: int | None = None) -> None:
        """An answer of ``piece`` after ``piece``, one content chunk each, as fast as the client
        reads, until ``total_chars`` are sent (then a normal end), or forever when None."""
        self.queue.append(Behaviour("text", text=piece, total_chars=total_chars))

    def next_behaviour(self) -> Behaviour:
        with self.lock:
            return self.queue.pop(0) if self.queue else Behaviour("demo")

    def record(self, seen: SeenRequest) -> None:
        with self.lock:
            self.requests.append(seen)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[SeenRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests, saw {len(self.requests)}")


def _make_handler(llm: ScriptedLLM):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            return

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            behaviour = llm.next_behaviour()
            seen = SeenRequest(body=body, started_at=time.monotonic(), behaviour=behaviour.kind)
            llm.record(seen)
            if behaviour.kind == "status":
                payload = behaviour.payload or {"error": {"message": "scripted failure"}}
                self._json(behaviour.status, payload, behaviour)
                seen.finished_at = time.monotonic()
                return
            answer = (
                (behaviour.text, behaviour.tool_call)
                if behaviour.kind in ("reply", "cut_tool_call")
                else None
            )
            items = _answer_chunks(body, answer)
            if behaviour.usage is False:
                items = [item for item in items if "usage" not in item]
            elif behaviour.usage:
                items = [
                    {**item, "usage": behaviour.usage} if "usage" in item else item
                    for item in items
                ]
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            try:
                if behaviour.kind == "stall":
                    self._chunk(demo_model.sse(items[0]))
                    self._wait_for_client_to_hang_up()
                    seen.closed_by_client_at = time.monotonic()
                    self.close_connection = True
                    return
                if behaviour.kind == "text":
                    self._stream_text(behaviour, seen, items[0])
                    return
                for item in items:
                    if demo_model.is_content_chunk(item):
                        if (
                            behaviour.kind == "raw"
                            and seen.content_chunks_sent == behaviour.after_chunks
                        ):
                            self._chunk(behaviour.raw)
                        if (
                            behaviour.kind == "drop"
                            and seen.content_chunks_sent >= behaviour.after_chunks
                        ):
                            self._vanish(seen)
                            return
                        time.sleep(llm.token_delay)
                        seen.content_chunks_sent += 1
                    self._chunk(demo_model.sse(item))
                    if behaviour.kind == "cut_tool_call" and _has_tool_call_arguments(item):
                        self._vanish(seen)
                        return
                self._end(seen)
            except (BrokenPipeError, ConnectionResetError, OSError):
                seen.closed_by_client_at = time.monotonic()
                self.close_connection = True

        def _stream_text(self, behaviour: Behaviour, seen: SeenRequest, first: dict) -> None:
            self._chunk(demo_model.sse(first))
            chunk = demo_model.sse(_content_chunk(first, behaviour.text))
            deadline = time.monotonic() + STALL_BOUND
            while behaviour.total_chars is None or seen.content_chars_sent < behaviour.total_chars:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the client read an endless stream for {STALL_BOUND}s")
                self._chunk(chunk)
                seen.content_chunks_sent += 1
                seen.content_chars_sent += len(behaviour.text)
            self._end(seen)

        def _vanish(self, seen: SeenRequest) -> None:
            """Vanish mid-stream: no terminating chunk, the socket just closes."""
            self.close_connection = True
            self.connection.shutdown(2)
            seen.finished_at = time.monotonic()

        def _end(self, seen: SeenRequest) -> None:
            self._chunk(demo_model.sse("[DONE]"))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            seen.finished_at = time.monotonic()

        def _wait_for_client_to_hang_up(self) -> None:
            # The client sends nothing more on this connection: readable means it closed it.
            deadline = time.monotonic() + STALL_BOUND
            while time.monotonic() < deadline:
                readable, _, _ = select.select([self.connection], [], [], 0.05)
                if readable:
                    return
            raise AssertionError(f"the client kept a stalled stream open for {STALL_BOUND}s")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, status: int, payload: dict[str, Any], behaviour: Behaviour) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            if behaviour.retry_after is not None:
                self.send_header("retry-after", behaviour.retry_after)
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def _answer_chunks(body: dict[str, Any], answer) -> list[dict[str, Any]]:
    """The demo model's chunks of ``answer``; a tool call's arguments given as text go out as
    that text, whole, in the first arguments chunk."""
    call = answer[1] if answer else None
    if call is None or not isinstance(call["arguments"], str):
        return list(demo_model.chunks(body, answer))
    items = list(demo_model.chunks(body, (answer[0], {**call, "arguments": {}})))
    pieces = [
        call_delta["function"]
        for item in items
        if _has_tool_call_arguments(item)
        for choice in item["choices"]
        for call_delta in choice["delta"]["tool_calls"]
    ]
    for piece, text in zip(pieces, [call["arguments"]] + [""] * len(pieces), strict=False):
        piece["arguments"] = text
    return items


def _has_tool_call_arguments(item: dict[str, Any]) -> bool:
    return any(
        (call.get("function") or {}).get("arguments")
        for choice in item.get("choices") or []
        for call in (choice.get("delta") or {}).get("tool_calls") or []
    )


def _content_chunk(first: dict[str, Any], text: str) -> dict[str, Any]:
    """A content chunk of the answer ``first`` (its first chunk) starts."""
    return {**first, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


class LLMServer:
    def __init__(self, llm: ScriptedLLM):
        self.llm = llm
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(llm))
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        llm.base_url = f"http://{host}:{port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedLLM:
        self.thread.start()
        return self.llm

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
