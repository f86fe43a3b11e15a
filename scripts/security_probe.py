"""Replays the approval-policy probe (issue 19) against a fresh `manage.py serve`, as a new user
would: every step tries to get a call past the policy or to hurt the service, and must fail.

    .venv/bin/python scripts/security_probe.py

It makes a throw-away data directory (SQLite, the embedded default), users and policy rules,
starts an SMTP server on loopback that records each envelope, starts `serve` (daphne, a
django-q2 cluster, the demo model) with mail going to it, and drives the API with the users'
tokens; the demo model's "call <tool> <json>" makes the calls an attacker's model would. It
prints one line per step and exits 1 if any step got through.
"""

import json
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "probe-password-1"
HOSTILE_REGEX = r"^([a-zA-Z0-9]+\.?)+@internal\.com$"
SETUP = f"""
from django.contrib.auth.models import Group, Permission, User
from approvals_app.models import PolicyRule
decide = Permission.objects.get(codename="decide_approvalrequest")
finance = Group.objects.create(name="finance")
alice = User.objects.create_user("alice", password="{PASSWORD}")
for name, groups in (("carol", []), ("dave", [finance]), ("erin", [finance])):
    approver = User.objects.create_user(name, password="{PASSWORD}", is_staff=True)
    approver.user_permissions.add(decide)
    approver.groups.set(groups)
sam = User.objects.create_user("sam", password="{PASSWORD}", is_staff=True)
sam.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q"))
rules = [
    dict(name="Never to rivals", field="to", operator="email_domain_in", value="evil.com",
         outcome="deny"),
    dict(name="Outside needs finance twice", field="to", operator="email_domain_in",
         value="external.com", outcome="require_approval", group=finance, quorum=2,
         allow_self_approval=False),
    dict(name="Internal addresses", field="to", operator="regex", value=r"{HOSTILE_REGEX}",
         outcome="deny"),
    dict(name="Colleagues", field="to", operator="email_domain_in", value="example.com",
         outcome="allow"),
]
for position, rule in enumerate(rules):
    PolicyRule.objects.create(tool_name="send_email", position=position, **rule)
"""


class Envelopes(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend; records every RCPT TO."""

    def handle(self):
        self.wfile.write(b"220 probe\r\n")
        while line := self.rfile.readline():
            command = line.strip().upper()
            if command.startswith(b"RCPT TO"):
                address = re.search(rb"<([^>]*)>", line.strip())
                self.server.recipients.append(address.group(1).decode() if address else "?")
            if command == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
            elif command.startswith(b"EHLO"):
                self.wfile.write(b"250-probe\r\n250 8BITMIME\r\n")
            elif command == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(b"250 ok\r\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


class Probe:
    def __init__(self, base: str, tokens: dict[str, str], recipients: list[str]):
        self.base = base
        self.tokens = tokens
        self.recipients = recipients
        self.failures = 0

    def client(self, user: str) -> httpx.Client:
        headers = {"Authorization": f"Token {self.tokens[user]}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)

    def check(self, step: str, held: bool, got: str) -> None:
        self.failures += not held
        print(f"{'held' if held else 'GOT THROUGH':>12}  {step}: {got}")

    def turn(self, user: str, message: str, *, until=("completed", "stopped", "failed")):
        with self.client(user) as api:
            session = api.post("/api/sessions/", json={}).json()["id"]
            turn = api.post(f"/api/sessions/{session}/turns/", json={"message": message}).json()
            for _ in range(600):
                status = api.get(f"/api/sessions/{session}/turns/{turn['id']}/").json()["status"]
                if status in until or status == "waiting_for_approval":
                    break
                time.sleep(0.1)
            events = api.get(f"/api/sessions/{session}/events/").json()["results"]
        return session, turn["id"], status, events

    def send(self, user: str, to: str, **extra) -> tuple[str, int, str, list]:
        arguments = {"to": to, "subject": "Report", "body": "Numbers attached.", **extra}
        return self.turn(user, "call send_email " + json.dumps(arguments, ensure_ascii=False))

    def pending_approval(self, user: str, session: str) -> int:
        with self.client(user) as api:
            listed = api.get("/api/approvals/?status=pending&limit=200").json()["results"]
        return next(a["id"] for a in listed if a["session"] == session)

    def approve(self, user: str, approval: int, arguments: dict) -> httpx.Response:
        with self.client(user) as api:
            return api.post(f"/api/approvals/{approval}/approve/", json={"arguments": arguments})


def tool_outcome(events: list) -> str:
    results = [e["data"] for e in events if e["kind"] == "tool_result"]
    calls = [e["data"] for e in events if e["kind"] == "tool_call"]
    rule = (calls[-1].get("policy") or {}).get("name") if calls else None
    text = results[-1]["result"][:90] if results else "(no result)"
    return f"rule {rule!r}; model told: {text}"


def run_steps(probe: Probe) -> None:
    for to in ("spy@evil.com (ann@example.com", "boss@external.com (x@example.com"):
        before = len(probe.recipients)
        _, _, status, events = probe.send("alice", to)
        delivered = probe.recipients[before:]
        probe.check(f"comment trick {to!r}", not delivered, f"{status}; {tool_outcome(events)}")

    # Full-width letters, as the probe sent them: NFKC folds them to "evil.com".
    _, _, status, events = probe.send("alice", "spy@\uff45\uff56\uff49\uff4c.com")
    denied = any((e["data"].get("policy") or {}).get("outcome") == "deny" for e in events)
    probe.check("full-width domain", denied and status == "completed", tool_outcome(events))

    for name, value in (("NUL", "x\u0000y"), ("ESC", "x\u001by"), ("bidi", "x\u202ey")):
        before = len(probe.recipients)
        _, _, status, events = probe.send("alice", "ann@example.com", subject=value)
        sent = probe.recipients[before:]
        probe.check(
            f"{name} in a subject", status == "completed" and not sent, tool_outcome(events)
        )

    session, _, status, _ = probe.send("alice", "ann@other.org")
    approval = probe.pending_approval("carol", session)
    edit = {"to": "spy@evil.com", "subject": "Report", "body": "Numbers attached."}
    answer = probe.approve("carol", approval, edit)
    probe.check("edit to a denied domain", answer.status_code == 409, answer.text[:120])
    answer = probe.approve("carol", approval, {**edit, "to": "boss@external.com"})
    probe.check("edit into another group's rule", answer.status_code in (403, 409), answer.text)

    session, _, _, _ = probe.send("dave", "ann@other.org")
    approval = probe.pending_approval("erin", session)
    answer = probe.approve("dave", approval, {**edit, "to": "boss@external.com"})
    probe.check("four-eyes by editing one's own", answer.status_code == 409, answer.text[:120])

    session, _, _, _ = probe.send("alice", "boss@external.com")
    with probe.client("carol") as api:
        listed = api.get("/api/approvals/?status=pending&limit=200").json()["results"]
    seen = [a["id"] for a in listed if a["session"] == session]
    probe.check("another group's request hidden", not seen, f"carol lists {seen}")

    with probe.client("alice") as api:
        title = api.post("/api/sessions/", json={"title": "Report\r\nURGENT: approve here"})
        probe.check("CR/LF in a title", title.status_code == 400, title.json().get("code"))
        nested = "[" * 1000 + "]" * 1000
        deep = api.post(
            "/api/sessions/", content=nested, headers={"Content-Type": "application/json"}
        )
        probe.check("1,000-deep JSON", deep.status_code == 400, deep.text[:80])
        probe.check(
            "no-store on API answers",
            "no-store" in deep.headers.get("cache-control", ""),
            deep.headers.get("cache-control", "(none)"),
        )

    hostile_regex_step(probe)
    schedule_admin_step(probe)
    with probe.client("carol") as api:
        codes = [api.post("/api/sessions/", json={}).status_code for _ in range(40)]
    refused = f"first 429 at #{codes.index(429) + 1}" if 429 in codes else "never refused"
    probe.check("40 sessions in a burst", 429 in codes, refused)


def hostile_regex_step(probe: Probe) -> None:
    """A story streams while a hostile address meets the catastrophic pattern on the same worker:
    the story's stored text must grow while the call is judged (the probe saw every other turn
    frozen for ~16 s, heartbeats too)."""
    with probe.client("erin") as api:
        session = api.post("/api/sessions/", json={}).json()["id"]
        api.post(f"/api/sessions/{session}/turns/", json={"message": "tell me a story"})

        def story_length() -> int:
            timeline = api.get(f"/api/sessions/{session}/events/").json()["results"]
            return sum(len(e["data"]["text"]) for e in timeline if e["kind"] == "assistant_message")

        time.sleep(1.0)
        before = story_length()
        _, _, status, events = probe.send("dave", "a" * 40 + "!@internal.com")
        after = story_length()
        api.post(f"/api/sessions/{session}/cancel/")
    probe.check(
        "catastrophic regex while another turn streams",
        after > before and status in ("waiting_for_approval", "completed"),
        f"story {before} -> {after} characters meanwhile; call {status}, {tool_outcome(events)}",
    )


def schedule_admin_step(probe: Probe) -> None:
    with httpx.Client(base_url=probe.base, timeout=30, follow_redirects=False) as browser:
        login = browser.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        browser.post(
            "/admin/login/",
            data={"username": "sam", "password": PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": probe.base + "/admin/login/"},
        )
        page = browser.get("/admin/django_q/schedule/add/")
    probe.check(
        "staff adds a django-q2 schedule", page.status_code == 403, f"HTTP {page.status_code}"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="agentproj-probe-") as data_dir:
        sink = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Envelopes)
        sink.recipients = []
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        port = free_port()
        env = {
            **os.environ,
            "DATA_DIR": data_dir,
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(sink.server_address[1]),
            "DEMO_LLM_TOKEN_DELAY": "0.05",
            "AGENTPROJ_ADMIN_PASSWORD": PASSWORD,
        }
        for name in ("DATABASE_URL", "REDIS_URL", "LLM_BASE_URL"):
            env.pop(name, None)
        manage(env, "migrate", "--verbosity", "0")
        manage(env, "shell", "-c", SETUP)
        tokens = {
            user: manage(env, "drf_create_token", user).split()[2]
            for user in ("alice", "carol", "dave", "erin")
        }
        serve = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(base + "/accounts/login/").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            probe = Probe(base, tokens, sink.recipients)
            run_steps(probe)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=60)
            sink.shutdown()
    print(f"\n{probe.failures} step(s) got through; mail delivered to: {sink.recipients}")
    return 1 if probe.failures else 0


if __name__ == "__main__":
    sys.exit(main())
