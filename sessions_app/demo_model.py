"""The built-in demo model: a deterministic OpenAI-compatible streaming chat endpoint.

Mounted in the ASGI application under ``/demo-llm/v1/`` so that the embedded default shows the
whole product with no API key. What it answers, from the last message:

- a tool result: a short sentence that reports it;
- "call <tool> {json arguments}": a call of any tool it is offered, by name, with those arguments
  (for example ``call time__get_current_time {"timezone": "Asia/Tokyo"}``);
- a question about what the tool said ("what did the tool say?"): the last tool result in the
  conversation it was sent, word for word (so the conversation memory shows without a real
  model);
- "delegate ...": a ``delegate`` call whose task is the rest of the message;
- a message mentioning "markdown": a sample with a heading, a list, a table, a link and a fenced
  Python code block (how the page renders Markdown);
- a message mentioning "story": a long story streamed word by word (long enough to press Stop);
- "email": a ``send_email`` call (needs approval); an address in the message is used as ``to``;
- "time": a ``get_time`` call;
- anything else: a short reply.

The pace is ``DEMO_LLM_TOKEN_DELAY`` seconds per word. Like any hosted model it wants its API key
(``DEMO_LLM_API_KEY``, derived from the deployment's secret key) and refuses bodies over Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE``.
"""

import asyncio
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

STORY_PARAGRAPH = (
    "Once upon a time, in a harbour town where the fog came in every evening, a lighthouse "
    "keeper named Ada kept a logbook of every ship that passed. One night a ship with no name "
    "sailed in without a sound, and Ada walked down to the pier with her lantern to ask where "
    "it had come from. The captain smiled and said they were carrying stories, and that each "
    "town along the coast could keep one if it told one in return."
)
STORY_CHAPTERS = 8
MARKDOWN_SAMPLE = """## Markdown sample

What the page renders:

- **bold**, *italic* and `inline code`
- a [link to the CommonMark spec](https://commonmark.org/)
- a table and a code block with a copy button

| Tool | Needs approval | Calls |
|:-----|:--------------:|------:|
| get_time | no | 12 |
| send_email | yes | 3 |

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"


print(greet("world"))
```
"""
# "What did the tool say?", "what was the tool's result?"
TOOL_QUESTION_WORDS = ("say", "said", "result", "return", "report")
EMAIL_PATTERN = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CALL_PATTERN = re.compile(r"^\s*call\s+(\S+)\s*(.*?)\s*$", re.DOTALL | re.IGNORECASE)


def story_text() -> str:
    chapters = [f"Chapter {n}. {STORY_PARAGRAPH}" for n in range(1, STORY_CHAPTERS + 1)]
    return "\n\n".join(chapters) + "\n\nThe end."


def _words(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


def _tool_names(tools: list[dict[str, Any]]) -> set[str]:
    return {t.get("function", {}).get("name", "") for t in tools or []}


def plan(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """What to answer: (text, tool call or None)."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {"role": "user", "content": ""}
    available = _tool_names(body.get("tools") or [])
    if last.get("role") == "tool":
        return f"Done. The tool reported: {last.get('content', '')}", None
    said = str(last.get("content") or "")
    lowered = said.lower()
    asked = CALL_PATTERN.match(said)
    if asked:
        return _call_by_name(asked.group(1), asked.group(2), available)
    if "tool" in lowered and any(word in lowered for word in TOOL_QUESTION_WORDS):
        results = [m for m in messages if m.get("role") == "tool"]
        if not results:
            return "No tool has given me a result in this conversation.", None
        return f"The last tool result I was given: {results[-1].get('content', '')}", None
    if "delegate" in lowered and "delegate" in available:
        task = said[lowered.index("delegate") + len("delegate") :].strip(" :,.") or "say hello"
        return "", {"name": "delegate", "arguments": {"task": task}}
    if "markdown" in lowered:
        return MARKDOWN_SAMPLE, None
    if "story" in lowered:
        return story_text(), None
    if "email" in lowered and "send_email" in available:
        found = EMAIL_PATTERN.search(said)
        arguments = {
            "to": found.group(0) if found else "team@example.com",
            "subject": "A message from agentproj",
            "body": f"Hello! You asked me to write: {said}",
        }
        return "", {"name": "send_email", "arguments": arguments}
    if "time" in lowered and "get_time" in available:
        return "", {"name": "get_time", "arguments": {"timezone": "UTC"}}
    return f"You said: {said.strip()}. Ask me for a story, the time, or to send an email.", None


def _call_by_name(name: str, raw_arguments: str, available: set[str]) -> tuple[str, dict | None]:
    if name not in available:
        offered = ", ".join(sorted(available)) or "none"
        return f"I have no tool called {name}. The tools I have: {offered}.", None
    try:
        arguments = json.loads(raw_arguments or "{}")
    except json.JSONDecodeError:
        return f"The arguments for {name} are not valid JSON: {raw_arguments}", None
    return "", {"name": name, "arguments": arguments}


def chunks(
    body: dict[str, Any], answer: tuple[str, dict[str, Any] | None] | None = None
) -> Iterator[dict[str, Any]]:
    """The completion chunks of the answer to ``body`` (or of a given ``answer``), in order."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    created = int(time.time())
    model = body.get("model") or "agentproj-demo"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    text, call = answer if answer is not None else plan(body)
    yield chunk({"role": "assistant", "content": ""})
    words = _words(text)
    for word in words:
        yield chunk({"content": word})
    if call is not None:
        arguments = json.dumps(call["arguments"])
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": f"call_{uuid.uuid4().hex[:16]}",
                        "type": "function",
                        "function": {"name": call["name"], "arguments": ""},
                    }
                ]
            }
        )
        middle = len(arguments) // 2
        for piece in (arguments[:middle], arguments[middle:]):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if call else "stop")
    prompt_tokens = sum(
        len(str(m.get("content") or "").split()) for m in body.get("messages") or []
    )
    yield {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words) + (8 if call else 0),
            "total_tokens": prompt_tokens + len(words) + (8 if call else 0),
        },
    }


def is_content_chunk(item: dict[str, Any]) -> bool:
    """Content chunks are paced; the rest (role, tool calls, finish, usage) go out at once."""
    return any((c.get("delta") or {}).get("content") for c in item.get("choices") or [])


def sse(item: dict[str, Any] | str) -> bytes:
    data = item if isinstance(item, str) else json.dumps(item)
    return f"data: {data}\n\n".encode()


class DemoLLM:
    """A plain ASGI application; ``prefix`` is where it is mounted."""

    def __init__(self, prefix: str = "/demo-llm/v1", token_delay: float | None = None):
        self.prefix = prefix.rstrip("/")
        self.token_delay = token_delay

    def delay(self) -> float:
        if self.token_delay is not None:
            return self.token_delay
        from django.conf import settings

        return settings.DEMO_LLM_TOKEN_DELAY

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        if not _authorized(scope):
            await self._json(send, 401, {"error": {"message": "invalid API key"}})
            return
        path = scope["path"][len(self.prefix) :]
        if scope["method"] == "GET" and path in ("/models", "/models/"):
            await self._json(
                send, 200, {"object": "list", "data": [{"id": "agentproj-demo", "object": "model"}]}
            )
            return
        if scope["method"] != "POST" or path.rstrip("/") != "/chat/completions":
            await self._json(send, 404, {"error": {"message": "not found"}})
            return
        raw = await _read_body(scope, receive)
        if raw is None:
            await self._json(send, 413, {"error": {"message": "request body too large"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            await self._json(send, 400, {"error": {"message": "invalid JSON"}})
            return
        if not body.get("stream"):
            text, call = plan(body)
            await self._json(send, 200, _non_streaming(body, text, call))
            return
        await self._stream(body, receive, send)

    async def _stream(self, body, receive, send):
        disconnected = asyncio.Event()

        async def watch_disconnect():
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()

        watcher = asyncio.create_task(watch_disconnect())
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        delay = self.delay()
        try:
            for item in chunks(body):
                if is_content_chunk(item) and delay:
                    await asyncio.sleep(delay)
                if disconnected.is_set():
                    return
                await send({"type": "http.response.body", "body": sse(item), "more_body": True})
            await send({"type": "http.response.body", "body": sse("[DONE]"), "more_body": False})
        finally:
            watcher.cancel()

    async def _json(self, send, status: int, payload: dict[str, Any]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def _authorized(scope) -> bool:
    from django.conf import settings

    expected = f"Bearer {settings.DEMO_LLM_API_KEY}".encode()
    given = dict(scope["headers"]).get(b"authorization", b"")
    return hmac.compare_digest(given, expected)


async def _read_body(scope, receive) -> bytes | None:
    """The request body, or None once it is larger than Django would read."""
    from django.conf import settings

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    declared = dict(scope["headers"]).get(b"content-length", b"0")
    if limit is not None and declared.isdigit() and int(declared) > limit:
        return None
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if limit is not None and len(raw) > limit:
            return None
        if not message.get("more_body"):
            return raw


def _non_streaming(body: dict[str, Any], text: str, call: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if call:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:16]}",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or "agentproj-demo",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}
        ],
    }
