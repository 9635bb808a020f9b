"""Real HTTP endpoints for the notifier's tests: http.server on 127.0.0.1 in a thread, recording every request
and answering as a test scripts it (slowly, with 5xx or 429, never, or only when the test lets it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fraud_detection.notifications.messages import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # answer only once the test sets it (or the receiver stops)
    delay_s: float = 0.0                 # answer this late (a slow or timing-out endpoint)


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic() when it arrived
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str:
        return self.headers.get(IDEMPOTENCY_HEADER, "")

    @property
    def version(self) -> tuple[str, int]:
        """(alert_id, version) of the alert JSON it carried."""
        message = json.loads(self.body)
        return message["alert_id"], message["version"]

    def signed_with(self, secret: bytes, tolerance_s: float = 300.0) -> bool:
        """What a receiver checks: the signature headers match the body under ``secret``, and are fresh."""
        return verify_signature(secret, self.headers.get(TIMESTAMP_HEADER, ""), self.body,
                                self.headers.get(SIGNATURE_HEADER, ""), time.time(), tolerance_s)


class Receiver:
    """``script(request, earlier requests with the same idempotency key)`` decides each answer."""

    def __init__(self, script: Callable[[Request, list[Request]], Answer] = lambda *_: Answer(),
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.script = script
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = Request(time.monotonic(), dict(self.headers.items()), body)
                with receiver._lock:
                    earlier = [r for r in receiver.requests if r.key == request.key]
                    receiver.requests.append(request)
                answer = receiver.script(request, earlier)
                if answer.hold is not None:
                    while not (answer.hold.is_set() or receiver._closing.is_set()):
                        answer.hold.wait(0.05)
                if answer.delay_s:
                    receiver._closing.wait(answer.delay_s)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout) or died (kill -9): what the test wanted

            def log_message(self, *_args) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def versions(self) -> set[tuple[str, int]]:
        return {r.version for r in self.snapshot()}

    def idempotency_keys(self) -> list[str]:
        return [r.key for r in self.snapshot()]
