"""A real SMTP server on loopback for tests: it accepts every message and keeps the envelope.

It speaks as much SMTP as Django's SMTP backend uses without TLS or login (EHLO/HELO, MAIL,
RCPT, DATA, RSET, NOOP, QUIT), so a test sees the recipients exactly as the mailer sent them in
``RCPT TO`` rather than as the message object held them.
"""

import re
import socketserver
import threading
from dataclasses import dataclass, field

# The address between the angle brackets, as sent; ESMTP parameters after it are ignored.
ENVELOPE_ADDRESS = re.compile(rb"^(?:MAIL FROM|RCPT TO):\s*<([^>]*)>", re.IGNORECASE)


@dataclass
class Delivery:
    mail_from: str
    rcpt_to: list[str]
    data: bytes


@dataclass
class SmtpSink:
    host: str = "127.0.0.1"
    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self, delivery: Delivery) -> None:
        with self.lock:
            self.deliveries.append(delivery)

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for delivery in self.deliveries for rcpt in delivery.rcpt_to]


def _make_handler(sink: SmtpSink):
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")
            self.wfile.flush()

        def handle(self) -> None:
            self.reply("220 sink ready")
            mail_from, rcpt_to = "", []
            while line := self.rfile.readline():
                command = line.rstrip(b"\r\n")
                verb = command[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    self.reply("250 sink")
                elif verb in (b"MAIL", b"RCPT"):
                    found = ENVELOPE_ADDRESS.match(command)
                    if found is None:
                        self.reply("501 syntax error")
                        continue
                    address = found.group(1).decode("utf-8", "replace")
                    if verb == b"MAIL":
                        mail_from, rcpt_to = address, []
                    else:
                        rcpt_to.append(address)
                    self.reply("250 ok")
                elif verb == b"DATA":
                    self.reply("354 end with <CRLF>.<CRLF>")
                    sink.delivered(Delivery(mail_from, rcpt_to, self._read_data()))
                    mail_from, rcpt_to = "", []
                    self.reply("250 queued")
                elif verb == b"RSET":
                    mail_from, rcpt_to = "", []
                    self.reply("250 ok")
                elif verb == b"NOOP":
                    self.reply("250 ok")
                elif verb == b"QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("502 not implemented")

        def _read_data(self) -> bytes:
            lines = []
            while (line := self.rfile.readline()) not in (b".\r\n", b""):
                lines.append(line)
            return b"".join(lines)

    return Handler


class SmtpServer:
    """``with SmtpServer() as sink:`` serves on a free loopback port until the block ends."""

    def __init__(self):
        self.sink = SmtpSink()
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _make_handler(self.sink))
        self.server.daemon_threads = True
        self.sink.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        return self.sink

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
