"""Who may change things from the dashboard, and who the audit log says did.

Reading is open to whoever can reach the dashboard. Actions that change stored state (creating
or expiring a silence) are allowed:

* on loopback (the dashboard bound to 127.0.0.1, ``::1`` or ``localhost``, the default) to the
  local user, recorded as ``local:<OS user>``: whoever can reach a loopback port is already a
  user of this machine;
* when exposed (any other address, including ``0.0.0.0`` and an empty address, which bind every
  interface; or ``[dashboard] require_login = "always"``, for a loopback dashboard behind a
  reverse proxy) only to a user signed in through Streamlit's ``st.login`` (an OIDC provider in
  ``.streamlit/secrets.toml``), recorded by the email the provider vouched for.

:func:`decide` is the whole rule, pure and unit-tested; :func:`current_access` is the thin edge
that reads the bound address, the secrets and ``st.user`` and calls it.
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

RequireLogin = Literal["auto", "always"]

#: Host names that always mean this machine only.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(address: str | None) -> bool:
    """True when ``address`` (Streamlit's ``server.address``) binds loopback only.

    An empty or missing address makes Streamlit listen on every interface, so it is *not*
    loopback; neither is a host name other than ``localhost`` (it may resolve anywhere).
    """
    text = (address or "").strip().strip("[]").lower()
    if not text:
        return False
    if text in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """What this browser session may do, and as whom.

    ``actor`` is what ``created_by`` / ``by`` records (None when actions are not allowed).
    ``offer_login``: the page should show a sign-in button (OIDC is configured, nobody is
    signed in). ``message`` says, in one line, why actions are (not) allowed.
    """

    exposed: bool
    can_change: bool
    actor: str | None
    offer_login: bool
    signed_in: bool
    message: str


def decide(
    *,
    address: str | None,
    require_login: RequireLogin,
    os_user: str,
    authlib_installed: bool,
    auth_problem: str | None,
    user: Mapping[str, Any],
) -> Access:
    """The exposure rule (see the module docstring).

    ``address``: the address the server is bound to; ``auth_problem``: None when an OIDC
    provider is configured in secrets.toml, else what is missing; ``user``: ``st.user`` as a
    mapping (``is_logged_in``, ``email``, ...).
    """
    exposed = require_login == "always" or not is_loopback(address)
    signed_in = bool(user.get("is_logged_in"))
    if not exposed:
        actor = f"local:{os_user or 'unknown'}"
        return Access(False, True, actor, False, signed_in,
                      f"The dashboard listens on loopback only: actions are recorded as "
                      f"{actor}.")
    if is_loopback(address):  # exposed only because require_login = "always"
        why = 'Sign-in is required here ([dashboard] require_login = "always")'
    else:
        why = "The dashboard is exposed (" + (f"on {address!r}" if address else
                                              "on every interface") + ")"
    if signed_in:
        email = str(user.get("email") or "").strip()
        if email:
            return Access(True, True, email, False, True, f"Signed in as {email}.")
        return Access(True, False, None, False, True,
                      "You are signed in, but the identity provider sent no email claim, so "
                      "actions cannot be recorded against you; ask for the 'email' scope.")
    if not authlib_installed:
        return Access(True, False, None, False, False,
                      f"{why}: changes need a signed-in user, and sign-in needs the "
                      "Authlib package (pip install Authlib), which is not installed. "
                      "Changes are disabled.")
    if auth_problem:
        return Access(True, False, None, False, False,
                      f"{why}: changes need a signed-in user, but no sign-in provider is "
                      f"configured ({auth_problem}). Changes are disabled; see "
                      "docs/dashboard.md, 'Sign-in when exposed'.")
    return Access(True, False, None, True, False,
                  f"{why}: sign in to create or expire silences.")


def local_user() -> str:
    """The OS user running the dashboard ('unknown' when it cannot be told)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def auth_problem(provider: str) -> str | None:
    """None when Streamlit can sign in with ``provider`` ('' = the [auth] section itself),
    else Streamlit's own one-line reason (missing secrets.toml, redirect_uri, client_id...)."""
    from streamlit.auth_util import validate_auth_credentials
    from streamlit.errors import StreamlitAuthError

    try:
        validate_auth_credentials(provider or "default")
    except StreamlitAuthError as error:
        return " ".join(str(error).split())
    return None


def current_access(require_login: RequireLogin, provider: str) -> Access:
    """:func:`decide` for this Streamlit session."""
    import streamlit as st
    from streamlit.auth_util import is_authlib_installed

    address = st.get_option("server.address")
    user: Mapping[str, Any] = dict(st.user.to_dict())
    installed = is_authlib_installed()
    return decide(
        address=str(address) if address is not None else None,
        require_login=require_login,
        os_user=local_user(),
        authlib_installed=installed,
        auth_problem=auth_problem(provider) if installed else None,
        user=user,
    )
