"""A local Slack incoming-webhook recorder: what the demo and the tests post alerts to.

``SlackSink().start()`` serves on a free loopback port (http.server in a daemon thread):

* ``POST /<anything>``: records the body (and when it came, the path, and the status answered)
  and answers like Slack: ``200 ok``, or the next scripted response (:meth:`SlackSink.script`:
  a 429 with Retry-After, a 500, a slow answer);
* ``GET /``: a readable HTML list of the messages received, newest first (the demo's Slack
  view);
* ``GET /messages.json``: every recorded request as JSON.

Only messages answered 200 count as delivered (:meth:`SlackSink.delivered`).
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

MAX_BODY = 1_000_000


@dataclass(frozen=True)
class Response:
    """A scripted answer: status, body, headers, and a delay before answering."""

    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    """One POST as recorded."""

    at: datetime
    path: str
    body: str
    status: int

    @property
    def payload(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.body)
        except json.JSONDecodeError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "path": self.path, "status": self.status,
                "payload": self.payload, "body": self.body}


class SlackSink:
    """The recorder (see the module docstring). Thread-safe."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._script: deque[Response] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control -------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving; returns the base URL (``http://127.0.0.1:PORT``)."""
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length).decode("utf-8", "replace")
                response = sink._next_response()
                sink._record(Received(datetime.now(UTC), self.path, body, response.status))
                if response.delay_s:
                    time.sleep(response.delay_s)
                self._answer(response.status, response.body, "text/plain", response.headers)

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/messages.json":
                    data = json.dumps([r.to_dict() for r in sink.received()], indent=1)
                    self._answer(200, data, "application/json")
                elif self.path.split("?")[0] == "/":
                    self._answer(200, sink.html(), "text/html; charset=utf-8")
                else:
                    self._answer(404, "not found", "text/plain")

            def _answer(self, status: int, text: str, content_type: str,
                        headers: dict[str, str] | None = None) -> None:
                data = text.encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    log.debug("slack sink: the client went away before the answer")

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("slack sink: %s", format % args)

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-sink",
                                        daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Slack sink is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def webhook(self, name: str = "hook") -> str:
        """A webhook URL on the sink (the path tells channels apart)."""
        return f"{self.url}/services/{name}"

    def script(self, *responses: Response) -> None:
        """Answer the next POSTs with ``responses``, in order; then 200 again."""
        with self._lock:
            self._script.extend(responses)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._script.clear()

    # --- what was received ---------------------------------------------------------------

    def _next_response(self) -> Response:
        with self._lock:
            return self._script.popleft() if self._script else Response()

    def _record(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def delivered(self) -> list[Received]:
        """The POSTs answered 200 (what a Slack channel would show)."""
        return [r for r in self.received() if r.status == 200]

    def html(self) -> str:
        rows = []
        for item in reversed(self.received()):
            payload = item.payload
            lines = []
            for block in payload.get("blocks") or []:
                text = block.get("text")
                if isinstance(text, dict):
                    lines.append(str(text.get("text", "")))
                for element in block.get("fields") or block.get("elements") or []:
                    if isinstance(element, dict) and element.get("type") == "mrkdwn":
                        lines.append(str(element.get("text", "")))
                    elif isinstance(element, dict) and element.get("url"):
                        lines.append(f"[{element.get('text', {}).get('text', 'link')}] "
                                     f"{element['url']}")
            body = "<br>".join(html.escape(line).replace("\n", "<br>") for line in lines) or \
                html.escape(item.body)
            status = "" if item.status == 200 else f" <b>answered {item.status}</b>"
            rows.append(f"<li><p><small>{item.at:%Y-%m-%d %H:%M:%S} UTC · "
                        f"{html.escape(item.path)}{status}</small></p>"
                        f"<p><b>{html.escape(str(payload.get('text', '')))}</b></p>"
                        f"<p>{body}</p></li>")
        items = "\n".join(rows) or "<li>No messages yet.</li>"
        return ("<!doctype html><html><head><meta charset='utf-8'>"
                "<meta http-equiv='refresh' content='10'>"
                "<title>orgscope Slack sink</title>"
                "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
                "li{border-bottom:1px solid #ddd;list-style:none;padding:.5em 0}</style>"
                f"</head><body><h1>Slack messages ({len(self.received())})</h1>"
                f"<ul>{items}</ul></body></html>")
