"""A paced OpenAI-compatible streaming model server for benchmarks (a separate process).

``POST /v1/chat/completions`` with ``"stream": true`` answers every request with the same
deterministic text, one word per server-sent event: the first word ``--first-token-delay``
seconds after the request arrived, then ``--tokens-per-second`` words a second on a fixed
schedule (so a slow reader does not slow the pace down, it only delays the bytes).

Each request is recorded under the bench id found in its last user message (``bench:<id>``): when
it arrived, the wall-clock time (``time.time()``, comparable across processes on this machine)
each word was written, and whether and when the client closed the stream early. ``GET /records``
returns them as JSON; ``GET /health`` answers 200.

    .venv/bin/python bench/stream_server.py [--port 0] [--first-token-delay 0.2]
        [--tokens-per-second 30] [--words 150]

The first line on stdout is ``PORT <n>`` once it listens (``--port 0`` picks a free port).
It is plain asyncio streams rather than an ASGI server so that a hundred concurrent streams
cost the machine as little as possible: the benchmark measures the app, not this server.
"""

import argparse
import asyncio
import json
import random
import re
import signal
import time
import uuid

BENCH_ID = re.compile(r"bench:([\w-]+)")
# Varied words, so that text shifted by a lost or repeated piece never matches by accident.
WORDS = """
harbour lantern keeper fog ship logbook captain pier evening story coast town wind tide rope
sail anchor gull beacon chart compass island reef current dawn dusk starlight voyage cargo deck
mast harbourmaster lighthouse signal weather season river bridge market bakery garden orchard
meadow valley mountain path letter journey morning
"""
VOCABULARY = WORDS.split()


def answer_tokens(words: int) -> list[str]:
    """The answer, one token per word with its trailing space (none after the last)."""
    pick = random.Random(words)  # the same answer on every run
    tokens = []
    for n in range(words):
        word = pick.choice(VOCABULARY)
        tokens.append(f"{word}{'.' if n % 12 == 11 else ''}" + (" " if n < words - 1 else ""))
    return tokens


class Recorder:
    def __init__(self):
        self.requests: list[dict] = []

    def start(self, bench_id: str | None) -> dict:
        record = {
            "bench_id": bench_id,
            "received_at": time.time(),
            "tokens": [],  # [start offset, end offset, sent at]
            "finished": None,  # "completed", "client_closed"
            "finished_at": None,
        }
        self.requests.append(record)
        return record


class StreamServer:
    def __init__(self, *, first_token_delay: float, tokens_per_second: float, words: int):
        self.first_token_delay = first_token_delay
        self.interval = 1.0 / tokens_per_second
        self.tokens = answer_tokens(words)
        self.recorder = Recorder()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # HTTP/1.1 keep-alive: the app's pooled client sends request after request here.
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                method, path, body = request
                if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                    if not await self.stream(reader, writer, body):
                        return
                elif method == "GET" and path == "/records":
                    payload = {
                        "first_token_delay": self.first_token_delay,
                        "tokens_per_second": 1.0 / self.interval,
                        "requests": self.recorder.requests,
                    }
                    await respond(writer, 200, json.dumps(payload).encode())
                elif method == "GET" and path == "/health":
                    await respond(writer, 200, b'{"ok": true}')
                else:
                    await respond(writer, 404, b'{"error": {"message": "not found"}}')
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def stream(self, reader, writer, body: bytes) -> bool:
        """Stream one answer; False when the client closed the connection meanwhile."""
        try:
            request = json.loads(body or b"{}")
        except json.JSONDecodeError:
            await respond(writer, 400, b'{"error": {"message": "invalid JSON"}}')
            return True
        record = self.recorder.start(bench_id_of(request.get("messages") or []))
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        # While the answer streams the client sends nothing: end of input means it hung up.
        hung_up = asyncio.ensure_future(reader.read(1))
        completion = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        model = request.get("model") or "bench"
        try:
            write_event(writer, chunk(completion, model, {"role": "assistant", "content": ""}))
            offset = 0
            for n, token in enumerate(self.tokens):
                due = started + self.first_token_delay + n * self.interval
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.wait({hung_up}, timeout=delay)
                if hung_up.done():
                    record["finished"], record["finished_at"] = "client_closed", time.time()
                    return False
                write_event(writer, chunk(completion, model, {"content": token}))
                record["tokens"].append([offset, offset + len(token), time.time()])
                offset += len(token)
                await writer.drain()
            write_event(writer, chunk(completion, model, {}, finish="stop"))
            usage = {
                "prompt_tokens": 10,
                "completion_tokens": len(self.tokens),
                "total_tokens": 10 + len(self.tokens),
            }
            write_event(writer, {**chunk(completion, model, {}), "choices": [], "usage": usage})
            write_event(writer, "[DONE]")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            record["finished"], record["finished_at"] = "completed", time.time()
            return True
        except ConnectionError:
            record["finished"], record["finished_at"] = "client_closed", time.time()
            return False
        finally:
            if not hung_up.done():
                hung_up.cancel()


def bench_id_of(messages: list[dict]) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "user":
            found = BENCH_ID.search(str(message.get("content") or ""))
            return found.group(1) if found else None
    return None


def chunk(completion: str, model: str, delta: dict, finish: str | None = None) -> dict:
    return {
        "id": completion,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def write_event(writer: asyncio.StreamWriter, item: dict | str) -> None:
    data = (item if isinstance(item, str) else json.dumps(item)).encode()
    event = b"data: " + data + b"\n\n"
    writer.write(b"%x\r\n%s\r\n" % (len(event), event))


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


async def respond(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()


async def serve(args: argparse.Namespace) -> None:
    app = StreamServer(
        first_token_delay=args.first_token_delay,
        tokens_per_second=args.tokens_per_second,
        words=args.words,
    )
    server = await asyncio.start_server(app.handle, "127.0.0.1", args.port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-delay", type=float, default=0.2, help="seconds")
    parser.add_argument("--tokens-per-second", type=float, default=30.0)
    parser.add_argument("--words", type=int, default=150, help="tokens in every answer")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
