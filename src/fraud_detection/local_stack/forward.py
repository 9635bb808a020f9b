"""A TCP listener that forwards PostgreSQL connections to a Unix socket: how pods of a test cluster on this machine
reach the embedded PostgreSQL, which pgserver starts with no TCP port (``LocalPostgres.serve_tcp``).

Every forwarded connection arrives on the socket, where pgserver trusts every role; so the forwarder reads each
client's startup message and passes only ``user`` on (PostgreSQL then asks it for its password)."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 65536
# Requests a client may send before its startup message; the server answers each with one byte.
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104
_MAX_STARTUP = 10_000


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client closed the connection during start-up")
        data += chunk
    return data


def startup_user(message: bytes) -> str | None:
    """The ``user`` of a protocol-3 startup message (length, version, then key/value C strings)."""
    fields = message[8:].split(b"\0")
    pairs = dict(zip(fields[0::2], fields[1::2], strict=False))
    user = pairs.get(b"user")
    return user.decode(errors="replace") if user is not None else None


class UnixSocketForwarder:
    def __init__(self, host: str, port: int, unix_path: Path, user: str) -> None:
        self.host, self.port, self.unix_path, self.user = host, port, unix_path, user
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> UnixSocketForwarder:
        listener = socket.create_server((self.host, self.port), backlog=64)
        self.port = listener.getsockname()[1]  # the chosen one when port was 0
        self._listener = listener
        threading.Thread(target=self._accept, name="pg-forward-accept", daemon=True).start()
        return self

    def _accept(self) -> None:
        while (listener := self._listener) is not None:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._open, args=(client,), daemon=True).start()

    def _open(self, client: socket.socket) -> None:
        server = socket.socket(socket.AF_UNIX)
        try:
            client.settimeout(30)  # a client that never sends its startup message is dropped
            server.connect(str(self.unix_path))
            while True:
                length, code = struct.unpack("!ii", _read_exactly(client, 8))
                if not 8 <= length <= _MAX_STARTUP:
                    raise ConnectionError(f"bad startup message length {length}")
                message = struct.pack("!ii", length, code) + _read_exactly(client, length - 8)
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    server.sendall(message)
                    client.sendall(_read_exactly(server, 1))  # the server's "N": no TLS on the socket
                    continue
                if (user := startup_user(message)) != self.user:  # checked before the server sees it
                    raise ConnectionError(f"role {user!r} may not connect over TCP")
                server.sendall(message)
                break
            client.settimeout(None)
        except OSError as err:  # ConnectionError included
            log.warning("event=forward_refused reason=%s", err)
            client.close()
            server.close()
            return
        with self._lock:
            self._connections.update((client, server))
        for source, target in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(CHUNK):
                target.sendall(data)
        # One side ended: end the other's sending too, so both pumps of the pair finish.
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            self._connections.discard(source)
        source.close()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
