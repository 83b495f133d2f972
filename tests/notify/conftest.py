"""Fixtures for the notification tests: the frozen clock, a real SMTP server (aiosmtpd) and a local HTTP
server, both on loopback; captured JSON logs."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message as EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from irflow import clock
from irflow.logs import configure_logging

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def frozen() -> Iterator[clock.FrozenClock]:
    fake = clock.FrozenClock(START)
    previous = clock.install(fake)
    yield fake
    clock.install(previous)


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    yield stream
    configure_logging(level="INFO", fmt="json")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# SMTP
# ------------------------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """Records delivered messages; answers RCPT for addresses in ``refuse`` with their reply."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    sink: SmtpSink


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    sink = SmtpSink()
    for _ in range(5):
        controller = Controller(sink, hostname="127.0.0.1", port=free_port())
        try:
            controller.start()
        except (OSError, RuntimeError):  # the free port was taken in between: pick another
            continue
        break
    else:
        pytest.fail("could not start the SMTP server")
    try:
        yield SmtpServer("127.0.0.1", controller.port, sink)
    finally:
        controller.stop()


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:  # type: ignore[type-arg]
        return json.loads(self.body)


@dataclass
class HttpServer:
    """A loopback HTTP server. ``responder(received) -> (status, headers, body)`` decides each answer."""

    url: str
    received: list[Received]
    responder: list[Callable[[Received], tuple[int, dict[str, str], bytes]]]

    def answer(self, fn: Callable[[Received], tuple[int, dict[str, str], bytes]]) -> None:
        self.responder[0] = fn


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    received: list[Received] = []
    responder: list[Callable[[Received], tuple[int, dict[str, str], bytes]]] = [lambda r: (200, {}, b"ok")]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            item = Received(
                self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
            )
            received.append(item)
            status, headers, body = responder[0](item)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield HttpServer(f"http://127.0.0.1:{server.server_address[1]}", received, responder)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
