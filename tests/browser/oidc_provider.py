"""A local OpenID Connect provider for the sign-in browser test: just enough of one.

Discovery (``/.well-known/openid-configuration``), ``/authorize`` (signs the configured user in
at once: redirects back with a code), ``/token`` (an RS256 id_token carrying the nonce the
client sent) and ``/jwks``. Loopback only; a new key per instance.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey


class OidcProvider:
    """``with OidcProvider(email) as idp: idp.metadata_url``; ``idp.authorized`` counts the
    sign-ins it granted, ``idp.tokens`` the codes exchanged."""

    def __init__(self, email: str, client_id: str = "orgscope") -> None:
        self.email = email
        self.client_id = client_id
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self.codes: dict[str, str] = {}  # code -> nonce
        self.authorized = 0
        self.tokens = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/.well-known/openid-configuration"

    def __enter__(self) -> OidcProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def write_streamlit_secrets(self, cwd: Path, port: int) -> None:
        """``cwd/.streamlit/secrets.toml`` (Streamlit reads it from the working directory too)
        with an ``[auth]`` section that signs in through this provider, for a dashboard on
        ``port``."""
        (cwd / ".streamlit").mkdir(exist_ok=True)
        (cwd / ".streamlit" / "secrets.toml").write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            'cookie_secret = "a-test-cookie-secret-of-at-least-32-bytes"\n'
            f'client_id = "{self.client_id}"\n'
            'client_secret = "test-secret"\n'
            f'server_metadata_url = "{self.metadata_url}"\n', encoding="utf-8")

    def metadata(self) -> dict[str, Any]:
        return {"issuer": self.base, "authorization_endpoint": f"{self.base}/authorize",
                "token_endpoint": f"{self.base}/token", "jwks_uri": f"{self.base}/jwks",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"]}

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {"iss": self.base, "sub": "user-1", "aud": self.client_id, "iat": now,
                  "exp": now + 600, "nonce": nonce, "email": self.email,
                  "email_verified": True, "name": self.email.split("@")[0]}
        return jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(provider.metadata())
                elif url.path == "/jwks":
                    self._json({"keys": [provider.key.as_dict(private=False)]})
                elif url.path == "/authorize":
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = query.get("nonce", "")
                    provider.authorized += 1
                    back = query["redirect_uri"] + "?" + urllib.parse.urlencode(
                        {"code": code, "state": query.get("state", "")})
                    self.send_response(302)
                    self.send_header("Location", back)
                    self.end_headers()
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                nonce = provider.codes.pop(form.get("code", ""), None)
                if self.path != "/token" or nonce is None:
                    self._json({"error": "invalid_grant"}, 400)
                    return
                provider.tokens += 1
                self._json({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                            "expires_in": 600, "id_token": provider.id_token(nonce)})

            def _json(self, body: dict[str, Any], status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
