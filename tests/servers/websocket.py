"""The server side of RFC 6455 WebSockets, just enough for ComfyUI's ``/ws`` event feed.

The handshake answers ``101 Switching Protocols`` with ``Sec-WebSocket-Accept``
(SHA-1 of the key and the RFC's GUID, base64); server frames are unmasked,
client frames must be masked; text frames carry ComfyUI's JSON events. A
request without the upgrade headers gets aiohttp's own 400 text.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import select
import struct
import threading
from typing import Any

from .base import Exchange

__all__ = ["accept_key", "handshake", "read_frame", "serve_feed", "text_frame"]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def handshake(ex: Exchange) -> bool:
    """Switch ``ex``'s connection to WebSocket; False (answered 400) when it did not ask to."""
    headers = ex.req.headers
    key = headers.get("sec-websocket-key")
    if headers.get("upgrade", "").lower() != "websocket" or not key:
        ex.send_text('No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".', 400)
        return False
    h = ex.h
    h.send_response_only(101)
    h.send_header("Upgrade", "websocket")
    h.send_header("Connection", "upgrade")
    h.send_header("Sec-WebSocket-Accept", accept_key(key))
    h.end_headers()
    h.wfile.flush()
    return True


def text_frame(text: str) -> bytes:
    """One unmasked, final text frame."""
    data = text.encode("utf-8")
    n = len(data)
    if n < 126:
        head = struct.pack(">BB", 0x81, n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", 0x81, 126, n)
    else:
        head = struct.pack(">BBQ", 0x81, 127, n)
    return head + data


def read_frame(rfile: Any) -> tuple[int, bytes] | None:
    """The opcode and unmasked payload of the client's next frame; None at end of stream."""
    head = rfile.read(2)
    if len(head) < 2:
        return None
    opcode, n = head[0] & 0x0F, head[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", rfile.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(rfile.read(n)))
    return opcode, payload


def serve_feed(ex: Exchange, feed: queue.Queue[str], stopping: threading.Event) -> None:
    """Send each text ``feed`` yields as a frame until the client closes or the server stops."""
    sock = ex.h.connection
    try:
        while not stopping.is_set():
            try:
                ex.write(text_frame(feed.get(timeout=0.02)))
                continue
            except queue.Empty:
                pass
            if select.select([sock], [], [], 0)[0]:
                frame = read_frame(ex.h.rfile)
                if frame is None or frame[0] == 0x8:  # closed, or a close frame
                    return
    finally:
        ex.h.close_connection = True
