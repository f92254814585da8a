"""The four EventBridge Schemas reads orgscope makes, served from :mod:`sim.discovery`'s
registry (simulator-only: moto has no Schemas API).

WSGI middleware placed *inside* the IAM gate (``IamGate(SchemasApi(moto))``), so the gate
checks the read role's ``schemas:*`` permission first, as AWS would. It answers rest-json
requests signed for the ``schemas`` service:

===============================  ==================================================
GET /v1/discoverers              ListDiscoverers (``limit``, ``nextToken``)
GET .../registries/name/R/schemas                     ListSchemas
GET .../schemas/name/S/versions                        ListSchemaVersions
GET .../schemas/name/S[?schemaVersion=V]               DescribeSchema (newest without V)
===============================  ==================================================

with botocore's output shapes (timestamps ISO 8601; tests/sim/test_schemas_api.py parses
them with botocore's own parser) and AWS's errors: ``NotFoundException`` (404) for a
registry, schema or version that does not exist, ``BadRequestException`` (400) for a call it
does not serve. Everything else goes on to moto. The account is the one the request's
credentials were issued in (moto's default account for other keys).
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sim.discovery import REGISTRY, SchemaRegistry
from sim.gate import MotoIam, WsgiApp, parse_authorization, parse_role_arn

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "123456789012"
PAGE_SIZE = 100

_SCHEMAS = re.compile(r"^/v1/registries/name/([^/]+)/schemas/?$")
_VERSIONS = re.compile(r"^/v1/registries/name/([^/]+)/schemas/name/([^/]+)/versions/?$")
_SCHEMA = re.compile(r"^/v1/registries/name/([^/]+)/schemas/name/([^/]+)/?$")


class ApiError(Exception):
    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def page(items: Sequence[dict[str, Any]], params: dict[str, str]) -> tuple[list[Any], str | None]:
    """One page of ``items`` (``limit``, ``nextToken`` = the offset, as text)."""
    try:
        start = int(params.get("nextToken") or 0)
        size = max(1, min(int(params.get("limit") or PAGE_SIZE), PAGE_SIZE))
    except ValueError:
        raise ApiError("400 Bad Request", "BadRequestException", "invalid nextToken or limit") \
            from None
    end = start + size
    return list(items[start:end]), (str(end) if end < len(items) else None)


def answer(registry: SchemaRegistry, account: str, region: str, method: str, path: str, *,
           params: dict[str, str]) -> dict[str, Any]:
    """The JSON body of one Schemas request (:class:`ApiError` for AWS's errors)."""
    if method != "GET":
        raise ApiError("400 Bad Request", "BadRequestException",
                       f"{method} {path} is not simulated")
    if path.rstrip("/") == "/v1/discoverers":
        found = [{"DiscovererArn": d.arn, "DiscovererId": d.discoverer_id,
                  "SourceArn": d.source_arn, "State": d.state,
                  "CrossAccount": d.cross_account, "tags": {}}
                 for d in registry.discoverers(account, region)]
        items, token = page(found, params)
        return {"Discoverers": items, **({"NextToken": token} if token else {})}
    for regex in (_VERSIONS, _SCHEMA, _SCHEMAS):
        match = regex.match(path)
        if match:
            break
    else:
        raise ApiError("400 Bad Request", "BadRequestException", f"{path} is not simulated")
    registry_name = match.group(1)
    if registry_name != REGISTRY or not registry.has_registry(account, region):
        raise ApiError("404 Not Found", "NotFoundException",
                       f"Registry with name {registry_name} does not exist.")
    schemas = registry.schemas(account, region)
    if regex is _SCHEMAS:
        prefix = params.get("schemaNamePrefix", "")
        found = [{"LastModified": _iso(s.versions[-1].created), "SchemaArn": s.arn,
                  "SchemaName": s.name, "tags": {}, "VersionCount": len(s.versions)}
                 for s in schemas if s.name.startswith(prefix) and s.versions]
        items, token = page(found, params)
        return {"Schemas": items, **({"NextToken": token} if token else {})}
    name = match.group(2)
    schema = next((s for s in schemas if s.name == name and s.versions), None)
    if schema is None:
        raise ApiError("404 Not Found", "NotFoundException",
                       f"Schema with name {name} does not exist.")
    if regex is _VERSIONS:
        found = [{"SchemaArn": schema.arn, "SchemaName": schema.name,
                  "SchemaVersion": v.version, "Type": "OpenApi3"} for v in schema.versions]
        items, token = page(found, params)
        return {"SchemaVersions": items, **({"NextToken": token} if token else {})}
    wanted = params.get("schemaVersion")
    version = schema.versions[-1] if not wanted else next(
        (v for v in schema.versions if v.version == wanted), None)
    if version is None:
        raise ApiError("404 Not Found", "NotFoundException",
                       f"Schema version {wanted} of {name} does not exist.")
    return {"Content": version.content, "Description": "discovered by the simulator",
            "LastModified": _iso(schema.versions[-1].created), "SchemaArn": schema.arn,
            "SchemaName": schema.name, "SchemaVersion": version.version, "tags": {},
            "Type": "OpenApi3", "VersionCreatedDate": _iso(version.created)}


class SchemasApi:
    """WSGI middleware: answers Schemas requests from ``registry``, passes the rest on."""

    def __init__(self, app: WsgiApp, registry: SchemaRegistry,
                 iam: MotoIam | None = None) -> None:
        self.app = app
        self.registry = registry
        self.iam = iam or MotoIam()

    def _account(self, access_key: str) -> str:
        parsed = parse_role_arn(self.iam.role_arn_of_key(access_key) or "")
        return parsed[0] if parsed else DEFAULT_ACCOUNT

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        signature = parse_authorization(environ.get("HTTP_AUTHORIZATION", ""))
        path = environ.get("PATH_INFO", "/")
        if signature is None or signature.service != "schemas" or not path.startswith("/v1/"):
            return self.app(environ, start_response)
        params = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
        headers = [("Content-Type", "application/json"),
                   ("x-amzn-RequestId", str(uuid.uuid4()))]
        try:
            body = answer(self.registry, self._account(signature.access_key),
                          signature.region, environ.get("REQUEST_METHOD", "GET"), path,
                          params=params)
            status = "200 OK"
        except ApiError as error:
            status, body = error.status, {"Code": error.code, "Message": error.message}
            headers.append(("x-amzn-ErrorType", error.code))
        data = json.dumps(body).encode()
        start_response(status, [*headers, ("Content-Length", str(len(data)))])
        return [data]
