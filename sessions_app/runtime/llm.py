"""The only module that talks to the model: OpenAI-compatible streaming chat completions.

Works against any server that implements ``POST {LLM_BASE_URL}/chat/completions`` with
``stream: true`` (OpenAI, vLLM, llama.cpp's server, Ollama, the built-in demo model).
"""

import asyncio
import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from django.conf import settings
from httpx_sse import EventSource, SSEError

from agentproj import metrics, tracing
from sessions_app.runtime.cancel import AgentStopped, CancelScope

logger = logging.getLogger(__name__)


class LLMError(Exception):
    """A genuine model failure, after retries. ``user_message`` is safe to show to users;
    ``code`` names its cause in the metrics (``agentproj_llm_errors_total``)."""

    def __init__(self, user_message: str, *, code: str):
        super().__init__(user_message)
        self.user_message = user_message
        self.code = code


class ContextTooLong(LLMError):
    """The model server refused the request as longer than the model's context window.

    ``limit`` is the window it stated and ``prompt_tokens`` what it counted the request at, where
    its message says (OpenAI's does, and servers that copy its wording)."""

    def __init__(self, *, limit: int | None, prompt_tokens: int | None):
        super().__init__(
            "The conversation is too long for the model's context window, even with its oldest "
            "messages left out.",
            code="context_too_long",
        )
        self.limit = limit
        self.prompt_tokens = prompt_tokens


# OpenAI's refusal of a request longer than the window: "This model's maximum context length is
# 8192 tokens. However, your messages resulted in 9017 tokens...", or "...you requested 9500
# tokens (9000 in the messages, 500 in the completion)" when the answer's size counts too.
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
STATED_LIMIT = re.compile(r"maximum context length is ([\d,]+) tokens", re.IGNORECASE)
STATED_PROMPT = re.compile(r"resulted in ([\d,]+) tokens|\(([\d,]+) in the messages", re.IGNORECASE)


class _Retryable(Exception):
    def __init__(self, user_message: str, *, code: str, retry_after: float | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.code = code
        self.retry_after = retry_after


class _NotAChatStream(Exception):
    """A ``data`` line that is JSON but not a chunk object."""


@dataclass
class ToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass
class ModelReply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    # What the output limit counts: the text and the tool calls' names and arguments.
    output_chars: int = 0


@dataclass
class _Request:
    """Request-local state: whether its stream was closed by us (a stop), not by the network."""

    aborted_by_us: bool = False


# A model server's port when its URL names none (the chat span's ``server.port``).
DEFAULT_PORTS = {"http": 80, "https": 443}

OnText = Callable[[str], Awaitable[None]]
OnRestart = Callable[[], Awaitable[None]]


def make_client(*, connections: int) -> httpx.AsyncClient:
    """One pooled client per turn host, with a connection for each turn it may run.

    Every read of a stream waits at most ``LLM_STREAM_IDLE_TIMEOUT``: a model that goes silent
    fails the attempt, while an answer that keeps coming may take as long as it needs."""
    timeout = httpx.Timeout(
        connect=settings.LLM_CONNECT_TIMEOUT,
        read=settings.LLM_STREAM_IDLE_TIMEOUT,
        write=settings.LLM_CONNECT_TIMEOUT,
        pool=settings.LLM_CONNECT_TIMEOUT,
    )
    headers = {"Authorization": f"Bearer {settings.LLM_API_KEY}"} if settings.LLM_API_KEY else {}
    return httpx.AsyncClient(
        base_url=settings.LLM_BASE_URL.rstrip("/") + "/",
        timeout=timeout,
        headers=headers,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def stream_chat(
    client: httpx.AsyncClient,
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    scope: CancelScope,
    on_text: OnText,
    on_restart: OnRestart,
    max_output_chars: int,
    trace_parent: tracing.Context,
) -> ModelReply:
    """Stream one completion, calling ``on_text`` with each piece of text, as a ``chat <model>``
    span under ``trace_parent`` (retries are its events; a stop is no error).

    Transport failures, 429 and 5xx are retried with exponential back-off and jitter (honouring
    ``Retry-After``); a retry after partial output calls ``on_restart`` first. A stop closes the
    stream at once and raises ``AgentStopped``; that abort is never retried nor reported.

    A refusal of the request as longer than the model's context window raises ``ContextTooLong``
    at once, for the caller to send less.

    An answer that grows past ``max_output_chars`` is cut there: its text up to the limit goes
    to ``on_text``, the stream is closed at once and ``LLMError`` is raised. That is not retried:
    the same request would most likely run on just as long again.
    """
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        payload["tools"] = tools
    span = tracing.start_span(
        f"chat {model}",
        parent=trace_parent,
        kind=tracing.SpanKind.CLIENT,
        attributes={
            tracing.OPERATION: "chat",
            tracing.REQUEST_MODEL: model,
            "server.address": client.base_url.host,
            "server.port": client.base_url.port or DEFAULT_PORTS[client.base_url.scheme],
        },
    )
    try:
        reply = await _stream_retrying(
            client, payload, scope, on_text, on_restart, max_output_chars, span
        )
    except LLMError as exc:
        tracing.fail(span, exc.code, exc.user_message)
        raise
    finally:
        span.end()
    return reply


async def _stream_retrying(
    client: httpx.AsyncClient,
    payload: dict[str, Any],
    scope: CancelScope,
    on_text: OnText,
    on_restart: OnRestart,
    max_output_chars: int,
    span: tracing.Span,
) -> ModelReply:
    retries = settings.LLM_MAX_RETRIES
    for attempt in range(retries + 1):
        scope.raise_if_cancelled()
        request = _Request()
        started = time.monotonic()
        try:
            reply = await _stream_once(client, payload, scope, request, on_text, max_output_chars)
        except _Retryable as exc:
            if request.aborted_by_us or scope.cancelled:
                raise AgentStopped(scope.reason) from None
            _count_request(started, error_code=exc.code)
            if attempt == retries:
                raise LLMError(exc.user_message, code=exc.code) from None
            delay = _retry_delay(attempt, exc.retry_after)
            span.add_event("retry", {tracing.ERROR_TYPE: exc.code})
            logger.warning(
                "model call failed (%s); retry %d of %d in %.2fs",
                exc.user_message,
                attempt + 1,
                retries,
                delay,
            )
            await scope.sleep(delay)
            await on_restart()
            continue
        except LLMError as exc:
            _count_request(started, error_code=exc.code)
            raise
        _count_request(started)
        metrics.LLM_TOKENS.labels("input").inc(reply.usage.get("prompt_tokens", 0))
        metrics.LLM_TOKENS.labels("output").inc(reply.usage.get("completion_tokens", 0))
        if reply.finish_reason:
            span.set_attribute(tracing.FINISH_REASONS, [reply.finish_reason])
        if reply.usage:
            span.set_attributes(
                {
                    tracing.INPUT_TOKENS: reply.usage["prompt_tokens"],
                    tracing.OUTPUT_TOKENS: reply.usage["completion_tokens"],
                }
            )
        return reply
    raise AssertionError("unreachable")


def _count_request(started: float, *, error_code: str = "") -> None:
    """A request that ended with an answer or a failure; one a stop cut short is not counted,
    its duration says nothing about the model."""
    metrics.LLM_REQUEST.observe(time.monotonic() - started)
    if error_code:
        metrics.LLM_ERRORS.labels(error_code).inc()


def _retry_delay(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, settings.LLM_RETRY_MAX_DELAY)
    ceiling = min(settings.LLM_RETRY_MAX_DELAY, settings.LLM_RETRY_BASE_DELAY * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def _stream_once(
    client: httpx.AsyncClient,
    payload: dict[str, Any],
    scope: CancelScope,
    request: _Request,
    on_text: OnText,
    max_output_chars: int,
) -> ModelReply:
    consume = asyncio.ensure_future(_consume(client, payload, on_text, max_output_chars))
    stop = asyncio.ensure_future(scope.wait())
    try:
        await asyncio.wait({consume, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not consume.done():
            # Leaving the ``client.stream`` block closes the response and its connection.
            request.aborted_by_us = True
            consume.cancel()
            await asyncio.wait({consume})
            if not consume.cancelled():
                consume.exception()
    if request.aborted_by_us:
        raise AgentStopped(scope.reason)
    return consume.result()


async def _consume(
    client: httpx.AsyncClient, payload: dict[str, Any], on_text: OnText, max_output_chars: int
) -> ModelReply:
    reply = ModelReply()
    calls: dict[int, dict[str, str]] = {}
    # Leaving the ``client.stream`` block early (the output limit, a response that is not a
    # chat stream) closes the connection: the rest of the answer is never read.
    try:
        async with client.stream("POST", "chat/completions", json=payload) as response:
            if response.status_code == 429:
                await response.aread()
                raise _Retryable(
                    "The model server is rate limiting requests.",
                    code="rate_limited",
                    retry_after=_parse_retry_after(response.headers.get("retry-after")),
                )
            if response.status_code >= 500:
                await response.aread()
                raise _Retryable(
                    f"The model server failed (HTTP {response.status_code}).",
                    code="server_error",
                )
            if response.status_code >= 400:
                refusal = _context_refusal(await response.aread())
                if refusal is not None:
                    raise refusal
                raise LLMError(
                    f"The model server refused the request (HTTP {response.status_code}).",
                    code="refused",
                )
            # Lines the SSE format does not know (garbage, undecodable bytes, other fields) are
            # ignored as the format says, and so are chunks without ``choices``: only a ``data``
            # line that is not a JSON object means the server is not sending a chat stream.
            async for sse in EventSource(response).aiter_sse():
                if sse.data.strip() == "[DONE]":
                    break
                if not sse.data.strip():
                    continue
                text = _apply_chunk(json.loads(sse.data), reply, calls)
                kept = text[: max(0, max_output_chars - reply.output_chars)]
                if kept:
                    reply.text += kept
                    reply.output_chars += len(kept)
                    await on_text(kept)
                if reply.output_chars > max_output_chars or len(kept) < len(text):
                    raise LLMError(
                        "The answer was longer than the limit of "
                        f"{settings.AGENT_MAX_OUTPUT_CHARS:,} characters.",
                        code="output_limit",
                    )
    except (httpx.TransportError, httpx.StreamError) as exc:
        raise _transport_failure(exc) from exc
    except (SSEError, json.JSONDecodeError, _NotAChatStream) as exc:
        # Not retried: a server (or a proxy in front of it) that answers something other than a
        # chat stream does so for every request, and each retry would pay for the answer again.
        raise LLMError(
            "The model server sent a response that is not a chat stream.",
            code="not_a_chat_stream",
        ) from exc
    reply.tool_calls = [
        ToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments_json=c["arguments"] or "{}")
        for i, c in sorted(calls.items())
    ]
    return reply


def _apply_chunk(chunk: Any, reply: ModelReply, calls: dict[int, dict[str, str]]) -> str:
    """Apply a chunk's tool calls, finish reason and usage; return its text, for the caller to
    keep within the output limit. A chunk of the wrong shape means this is no chat stream."""
    try:
        return _apply_chat_chunk(chunk, reply, calls)
    except (AttributeError, TypeError, ValueError) as exc:
        raise _NotAChatStream from exc


def _apply_chat_chunk(chunk: dict, reply: ModelReply, calls: dict[int, dict[str, str]]) -> str:
    if chunk.get("usage"):
        usage = chunk["usage"]
        # OpenAI's and vLLM's servers say how much of the input came from their prompt cache.
        details = usage.get("prompt_tokens_details") or {}
        reply.usage = {
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
            "cached_tokens": int(details.get("cached_tokens") or 0),
        }
    text = ""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        text += delta.get("content") or ""
        for part in delta.get("tool_calls") or []:
            index = part.get("index", 0)
            if not isinstance(index, int):
                raise TypeError("a tool call's index is a number")
            slot = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            slot["id"] = part.get("id") or slot["id"]
            function = part.get("function") or {}
            name, arguments = function.get("name") or "", function.get("arguments") or ""
            slot["name"] += name
            slot["arguments"] += arguments
            reply.output_chars += len(name) + len(arguments)
        if choice.get("finish_reason"):
            reply.finish_reason = choice["finish_reason"]
    return text


def _context_refusal(body: bytes) -> ContextTooLong | None:
    """The refusal in an error response's body when it says the request is too long."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, dict) or error.get("code") != CONTEXT_LENGTH_EXCEEDED:
        return None
    message = str(error.get("message") or "")
    return ContextTooLong(
        limit=_stated(STATED_LIMIT.search(message)),
        prompt_tokens=_stated(STATED_PROMPT.search(message)),
    )


def _stated(match: re.Match | None) -> int | None:
    """The number a refusal states ("9,017" too), where it states one."""
    if match is None:
        return None
    return int(next(group for group in match.groups() if group).replace(",", ""))


def _transport_failure(exc: Exception) -> _Retryable:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return _Retryable("The model server could not be reached.", code="unreachable")
    if isinstance(exc, httpx.ReadTimeout):
        return _Retryable(
            f"The model server sent nothing for {settings.LLM_STREAM_IDLE_TIMEOUT:g} seconds.",
            code="timeout",
        )
    if isinstance(exc, httpx.TimeoutException):
        return _Retryable("The model server took too long to answer.", code="timeout")
    return _Retryable(
        "The connection to the model server was lost mid-answer.", code="connection_lost"
    )
