"""moto's threaded server on loopback, with the IAM gate in front of its WSGI app."""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterable

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from sim.admin import AdminSessions
from sim.discovery import SchemaRegistry
from sim.gate import IamGate
from sim.schemas_api import SchemasApi
from sim.trail import CloudTrailEvents

log = logging.getLogger(__name__)


class GatedMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose app is wrapped by :class:`sim.gate.IamGate`, with the
    simulator's Schemas API (:mod:`sim.schemas_api`, from ``schemas``) behind the gate, and
    CloudTrail's change events (:mod:`sim.trail`) behind that.

    The state lives in moto's module-level backends, shared by every server in the process:
    :meth:`reset` empties it (POST /moto-api/reset).
    """

    def __init__(self, guarded_roles: Iterable[str], host: str = "127.0.0.1",
                 port: int = 0, schemas: SchemaRegistry | None = None) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)
        self._guarded_roles = tuple(guarded_roles)
        #: Discoverers and discovered schemas (none unless the organization adds them).
        self.schemas = schemas or SchemaRegistry()

    def _server_entry(self) -> None:
        # behind the gate: a refused change changes nothing, so CloudTrail records nothing
        app = IamGate(SchemasApi(CloudTrailEvents(DomainDispatcherApplication(
            create_backend_app)), self.schemas), self._guarded_roles)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=_QuietHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint_url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Empty every moto backend (all accounts and services)."""
        url = f"{self.endpoint_url}/moto-api/reset"  # always http://<loopback>:<port>
        request = urllib.request.Request(url, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass


class _QuietHandler(MotoRequestHandler):
    """No access log line per request (werkzeug's default); errors still go to logging."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class ServedOrganization:
    """What every simulated organization shares: its gated server and the platform team's
    admin sessions, available once started (one simulator per process at a time: moto's state
    is process-wide)."""

    _server: GatedMotoServer | None
    _admin: AdminSessions | None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return str(self._server.endpoint_url)

    @property
    def admin(self) -> AdminSessions:
        """Admin sessions into every account (what the platform team would use)."""
        if self._admin is None:
            raise RuntimeError("the simulator is not started")
        return self._admin

    def _stop_server(self) -> None:
        """Stop the server and empty moto's (process-wide) state."""
        if self._server is not None:
            try:
                self._server.reset()
            except OSError as error:
                log.warning("could not reset moto state: %s", error)
            self._server.stop()
            self._server = None
        self._admin = None
