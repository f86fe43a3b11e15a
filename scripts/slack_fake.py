"""A loopback stand-in for Slack's Web API: it keeps and prints what Slack would show.

It answers the methods agentproj calls (``chat.postMessage``, ``chat.update``, ``chat.delete``,
``chat.postEphemeral``, ``users.info``) and the ``response_url`` of the presses it hands out,
so approvals in Slack can be tried, and tested, without a workspace.

Run it, then start agentproj pointed at it (README, "Approvers" → "Slack"):

    python scripts/slack_fake.py --user U0CAROL=carol@example.org

and press a button of a request it printed, signed as Slack signs it:

    python scripts/slack_fake.py press 12 approve --as U0CAROL

Only the standard library, so the tests can start it in their own process.
"""

import argparse
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

DEFAULT_PORT = 8765
DEFAULT_TOKEN = "xoxb-fake"
DEFAULT_SECRET = "fake-signing-secret"


class SlackFake:
    """A Web API on 127.0.0.1. ``calls`` holds every (method, arguments) in order; ``messages``
    what each channel shows now, by (channel, ts); ``ephemerals`` what only one person saw. Set
    ``fail_status`` to answer every call with that HTTP status (Slack down)."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        token: str = DEFAULT_TOKEN,
        port: int = 0,
        out: TextIO | None = None,
    ):
        self.users = dict(users or {})
        self.token = token
        self.out = out
        self.fail_status: int | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.base = f"http://{host}:{port}"
        self.api_url = f"{self.base}/api/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "SlackFake":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)

    def response_url(self, name: str = "press") -> str:
        return f"{self.base}/response/{urllib.parse.quote(name)}"

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    # What the API answers

    def answer(self, method: str, arguments: dict[str, Any], auth: str) -> dict[str, Any]:
        if auth != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth"}
        if method == "chat.postMessage":
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            channel = arguments.get("channel", "")
            self.messages[(channel, ts)] = arguments
            self.show(f"#{channel} new message {ts}", arguments)
            return {"ok": True, "channel": channel, "ts": ts, "message": arguments}
        if method == "chat.update":
            key = (arguments.get("channel", ""), arguments.get("ts", ""))
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = arguments
            self.show(f"#{key[0]} message {key[1]} updated", arguments)
            return {"ok": True, "channel": key[0], "ts": key[1]}
        if method == "chat.delete":
            key = (arguments.get("channel", ""), arguments.get("ts", ""))
            if self.messages.pop(key, None) is None:
                return {"ok": False, "error": "message_not_found"}
            self.print(f"#{key[0]} message {key[1]} deleted")
            return {"ok": True, "channel": key[0], "ts": key[1]}
        if method == "chat.postEphemeral":
            self.ephemerals.append(arguments)
            self.print(f"only {arguments.get('user')} sees: {arguments.get('text')}")
            return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}
        if method == "users.info":
            user = arguments.get("user", "")
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": {"id": user, "profile": {"email": self.users[user]}}}
        return {"ok": False, "error": "unknown_method"}

    def show(self, heading: str, message: dict[str, Any]) -> None:
        """A message as a person in the channel would read it, buttons in brackets."""
        lines = [heading]
        for block in message.get("blocks") or []:
            if block.get("type") == "section":
                lines += ["  " + line for line in block["text"]["text"].splitlines()]
            elif block.get("type") == "actions":
                buttons = [
                    f"[{element['text']['text']}] ({element['action_id']})"
                    for element in block.get("elements", [])
                ]
                lines.append("  " + "  ".join(buttons))
            elif block.get("type") == "context":
                lines += ["  " + element.get("text", "") for element in block.get("elements", [])]
        if len(lines) == 1:
            lines.append("  " + str(message.get("text", "")))
        self.print("\n".join(lines))

    def print(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.handle_call()

            def do_POST(self):
                self.handle_call()

            def handle_call(self):
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                arguments = dict(urllib.parse.parse_qsl(url.query))
                if raw and "json" in (self.headers.get("Content-Type") or ""):
                    arguments.update(json.loads(raw))
                elif raw:
                    arguments.update(urllib.parse.parse_qsl(raw.decode()))
                if url.path.startswith("/response/"):
                    method = "response_url"
                else:
                    method = url.path.removeprefix("/api/")
                with fake._lock:
                    fake.calls.append((method, arguments))
                    if fake.fail_status is not None:
                        return self.reply(fake.fail_status, b"<html>Slack is down</html>", "html")
                    if method == "response_url":
                        fake.ephemerals.append(arguments)
                        fake.print(f"only the presser sees: {arguments.get('text')}")
                        return self.reply(200, b"ok", "plain")
                    answer = fake.answer(method, arguments, self.headers.get("Authorization", ""))
                self.reply(200, json.dumps(answer).encode(), "json")

            def reply(self, status: int, body: bytes, kind: str):
                self.send_response(status)
                content_type = "application/json" if kind == "json" else f"text/{kind}"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


# Presses, as Slack sends them to the app


def press_payload(
    *, user: str, action_id: str, response_url: str, channel: str = "C0APPROVALS"
) -> dict[str, Any]:
    """A ``block_actions`` payload as Slack posts it for one button press (the fields agentproj
    reads, and a few it does not)."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0FAKE"},
        "api_app_id": "A0FAKE",
        "team": {"id": "T0FAKE"},
        "channel": {"id": channel, "name": "approvals"},
        "container": {"type": "message", "channel_id": channel},
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b"}],
    }


def form_body(payload: Any) -> bytes:
    """Slack's interaction requests: form-encoded, the JSON in ``payload``."""
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return urllib.parse.urlencode({"payload": text}).encode()


def signature_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's signing scheme: ``v0=`` hex HMAC-SHA256 of ``v0:<timestamp>:<body>``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def press(args: argparse.Namespace) -> int:
    body = form_body(
        press_payload(
            user=args.as_user,
            action_id=f"approval:{args.request}:{args.decision}",
            response_url=f"{args.fake.rstrip('/')}/response/{args.as_user}",
        )
    )
    request = urllib.request.Request(
        args.app.rstrip("/") + "/integrations/slack/interactions/",
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            **signature_headers(args.secret, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(f"agentproj answered {response.status}")
    except urllib.error.HTTPError as exc:
        print(f"agentproj answered {exc.code}: {exc.read().decode()}")
        return 1
    return 0


def serve(args: argparse.Namespace) -> int:
    users = dict(pair.split("=", 1) for pair in args.user)
    with SlackFake(users=users, token=args.token, port=args.port, out=sys.stdout) as fake:
        print(f"Fake Slack Web API at {fake.api_url} (Ctrl-C stops it)", flush=True)
        print(f"Users: {users or 'none (add --user U0ID=email)'}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            fake.thread.join()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.set_defaults(run=serve)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token it accepts")
    parser.add_argument(
        "--user", action="append", default=[], help="a Slack user and their e-mail: U0ID=email"
    )
    commands = parser.add_subparsers()
    pressing = commands.add_parser("press", help="press a button, signed as Slack signs it")
    pressing.set_defaults(run=press)
    pressing.add_argument("request", type=int, help="the approval request's id")
    pressing.add_argument("decision", choices=["approve", "reject"])
    pressing.add_argument("--as", dest="as_user", required=True, help="the Slack user id")
    pressing.add_argument("--app", default="http://127.0.0.1:8000")
    pressing.add_argument("--fake", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    pressing.add_argument(
        "--secret", default=os.environ.get("SLACK_SIGNING_SECRET", DEFAULT_SECRET)
    )
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
