"""ComfyUI's progress, read from its ``/ws`` event feed (the only place it reports it).

Over HTTP ComfyUI tells a waiting job from a running one, not how far it
is; its WebSocket sends ``{"type": "progress", "data": {"value", "max",
"prompt_id", "node"}}`` at every sampler step to the client that queued the
prompt (``client_id``). httpx speaks no WebSocket, so this is the small part
of RFC 6455 a reader needs: the upgrade handshake (checking
``Sec-WebSocket-Accept``), unmasked server frames, masked pong and close
frames. It is best effort: when the feed cannot be opened (a proxy, an old
server) the picture is still made, with a waiting indicator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import threading
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ProgressFeed"]

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _open(host: str, client_id: str, timeout: float, verify: bool) -> socket.socket:
    """A socket past the WebSocket handshake with ``host``'s ``/ws``; OSError when refused."""
    url = urlsplit(host)
    secure = url.scheme == "https"
    port = url.port or (443 if secure else 80)
    sock = socket.create_connection((url.hostname or "127.0.0.1", port), timeout=timeout)
    if secure:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=url.hostname)
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    path = (url.path.rstrip("/") or "") + f"/ws?clientId={client_id}"
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode("ascii")
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1024)
        if not chunk or len(head) > 16384:
            sock.close()
            raise OSError("no WebSocket handshake")
        head += chunk
    expected = base64.b64encode(hashlib.sha1((key + _GUID).encode("ascii")).digest())
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    accepted = any(
        line.lower().startswith(b"sec-websocket-accept:") and line.split(b":", 1)[1].strip() == expected
        for line in lines[1:]
    )
    if b" 101 " not in lines[0] + b" " or not accepted:
        sock.close()
        raise OSError("the server refused the WebSocket upgrade")
    return sock


def _parse(buffer: bytes) -> tuple[int, int, bytes, int] | None:
    """(first byte, opcode, payload, length) of the frame that starts ``buffer``; None if incomplete."""
    if len(buffer) < 2:
        return None
    b0, b1 = buffer[0], buffer[1]
    n, at = b1 & 0x7F, 2
    if n == 126:
        if len(buffer) < 4:
            return None
        n, at = struct.unpack(">H", buffer[2:4])[0], 4
    elif n == 127:
        if len(buffer) < 10:
            return None
        n, at = struct.unpack(">Q", buffer[2:10])[0], 10
    if len(buffer) < at + n:
        return None
    return b0, b0 & 0x0F, buffer[at : at + n], at + n


def _frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (control frames only: short payloads)."""
    mask = os.urandom(4)
    return (
        bytes([0x80 | opcode, 0x80 | len(payload)])
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


class ProgressFeed:
    """Reads one client's ComfyUI events in a thread; :meth:`fraction` gives a prompt's progress."""

    def __init__(self, host: str, client_id: str, *, timeout: float = 2.0, verify: bool = True) -> None:
        self._sock = _open(host, client_id, timeout, verify)
        self._sock.settimeout(0.5)
        self._progress: dict[str, float] = {}
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="comfyui-progress", daemon=True)
        self._thread.start()

    def fraction(self, prompt_id: str) -> float | None:
        """How far the sampler of ``prompt_id`` is (0 to 1), or None before its first step."""
        return self._progress.get(prompt_id)

    def _read(self) -> None:
        buffer, message = b"", b""
        while not self._closed.is_set():
            frame = _parse(buffer)
            if frame is None:
                try:
                    chunk = self._sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                continue
            b0, opcode, payload, size = frame
            buffer = buffer[size:]
            if opcode == 0x9:  # ping
                self._send(_frame(0xA, payload))
            elif opcode == 0x8:
                return
            elif opcode in (0x0, 0x1):  # text (or its continuation); binary frames are previews
                message += payload
                if b0 & 0x80:
                    self._event(message)
                    message = b""

    def _event(self, text: bytes) -> None:
        try:
            event: Any = json.loads(text)
            data = event.get("data") or {}
            if event.get("type") == "progress" and data.get("max"):
                self._progress[str(data.get("prompt_id"))] = min(
                    float(data["value"]) / float(data["max"]), 1.0
                )
        except (ValueError, TypeError, AttributeError):
            pass  # an event of another shape: not ours to read

    def _send(self, frame: bytes) -> None:
        try:
            self._sock.sendall(frame)
        except OSError:
            pass

    def close(self) -> None:
        """Say goodbye to the server and stop reading."""
        if not self._closed.is_set():
            self._closed.set()
            self._send(_frame(0x8, struct.pack(">H", 1000)))
            try:
                self._sock.close()
            except OSError:
                pass
