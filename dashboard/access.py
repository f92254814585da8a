"""Who may read the dashboard, who may change things from it, and who the audit log says did.

* On loopback (the dashboard bound to 127.0.0.1, ``::1`` or ``localhost``, the default) anyone
  who can reach the port is already a user of this machine: every page is open, and changes
  (creating or expiring a silence) are recorded as ``local:<OS user>``.
* Exposed (any other address, including ``0.0.0.0`` and an empty address, which bind every
  interface; or ``[dashboard] require_login = "always"``, for a loopback dashboard behind a
  reverse proxy) nothing is read from the store or shown until a user has signed in through
  Streamlit's ``st.login`` (an OIDC provider in ``.streamlit/secrets.toml``) *and* the email
  the provider vouched for is on ``[dashboard] allowed_emails`` / ``allowed_domains``. That
  user reads every page and their changes are recorded by that email. With no provider
  configured nobody can sign in, so an exposed dashboard serves no data at all.

An empty allow-list refuses every signed-in user: a provider such as Google vouches for any
of its accounts, so "whoever can sign in" must be said explicitly (``allowed_domains =
["*"]``). docs/dashboard.md, "Sign-in when exposed", says why.

:func:`decide` is the whole rule, pure and unit-tested; :func:`current_access` is the thin edge
that reads the bound address, the secrets and ``st.user`` and calls it.
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from orgscope.untrusted import markdown

if TYPE_CHECKING:
    from orgscope.config import DashboardConfig

log = logging.getLogger(__name__)

RequireLogin = Literal["auto", "always"]

#: Host names that always mean this machine only.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

#: ``allowed_domains`` entry that allows every user the provider vouches for.
ANY_DOMAIN = "*"


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
class AllowList:
    """Who may read an exposed dashboard once signed in: exact emails and exact domains,
    lower-case (``[dashboard] allowed_emails`` / ``allowed_domains``, validated in
    ``orgscope.config``). ``"*"`` in ``domains`` allows any email the provider vouches for."""

    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    @classmethod
    def of(cls, emails: Iterable[str] = (), domains: Iterable[str] = ()) -> AllowList:
        """The allow-list of these entries, compared case-insensitively."""
        return cls(frozenset(e.strip().lower() for e in emails),
                   frozenset(d.strip().lower() for d in domains))

    @property
    def empty(self) -> bool:
        return not self.emails and not self.domains

    def allows(self, email: str) -> bool:
        """True when ``email`` is listed, or its domain (everything after the last ``@``) is,
        exactly: ``example.com`` does not allow ``evil-example.com`` nor ``sub.example.com``."""
        address = email.strip().lower()
        local, at, domain = address.rpartition("@")
        if not (local and at and domain):
            return False
        return (address in self.emails or domain in self.domains
                or ANY_DOMAIN in self.domains)


@dataclass(frozen=True)
class Access:
    """What this browser session may do, and as whom.

    ``can_read``: the pages may read the store and show it (False: only the sign-in, refusal
    or how-to-configure page is shown). ``actor`` is what ``created_by`` / ``by`` records (None
    when changes are not allowed). ``offer_login``: show a sign-in button (OIDC configured,
    nobody signed in); ``offer_logout``: show a sign-out button (somebody is signed in on an
    exposed dashboard). ``message`` says, in markdown-safe text, why reading and changes are
    (not) allowed.
    """

    exposed: bool
    can_read: bool
    can_change: bool
    actor: str | None
    offer_login: bool
    offer_logout: bool
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
    allowed: AllowList,
) -> Access:
    """The access rule (see the module docstring).

    ``address``: the address the server is bound to; ``auth_problem``: None when an OIDC
    provider is configured in secrets.toml, else what is missing; ``user``: ``st.user`` as a
    mapping (``is_logged_in``, ``email``, ``email_verified``...); ``allowed``: the allow-list.
    """
    exposed = require_login == "always" or not is_loopback(address)
    signed_in = bool(user.get("is_logged_in"))
    if not exposed:
        actor = f"local:{os_user or 'unknown'}"
        return Access(False, True, True, actor, False, False, signed_in,
                      f"The dashboard listens on loopback only: actions are recorded as "
                      f"{markdown(actor)}.")
    if is_loopback(address):  # exposed only because require_login = "always"
        why = 'Sign-in is required here ([dashboard] require_login = "always")'
    else:
        why = "The dashboard is exposed (" + (f"on {address!r}" if address else
                                              "on every interface") + ")"
    if signed_in:
        return _signed_in(user, allowed)
    if not authlib_installed:
        return Access(True, False, False, None, False, False, False,
                      f"{why}, so every page needs a signed-in user, and sign-in needs the "
                      "Authlib package (pip install Authlib), which is not installed. "
                      "Nothing is shown until it is.")
    if auth_problem:
        return Access(True, False, False, None, False, False, False,
                      f"{why}, so every page needs a signed-in user, but no sign-in provider "
                      f"is configured ({auth_problem}). Nothing is shown until one "
                      "is: put an OIDC client in the [auth] section of "
                      "dashboard/.streamlit/secrets.toml (docs/dashboard.md, 'Sign-in when "
                      "exposed'), or bind [dashboard] address to 127.0.0.1.")
    return Access(True, False, False, None, True, False, False,
                  f"{why}: sign in to read it.")


def _signed_in(user: Mapping[str, Any], allowed: AllowList) -> Access:
    """:func:`decide` for a user the provider signed in on an exposed dashboard."""
    email = str(user.get("email") or "").strip()
    if not email:
        return _refused("You are signed in, but the identity provider sent no email claim, "
                        "so the allow-list cannot be checked: ask for the 'email' scope.")
    shown = markdown(email)
    if str(user.get("email_verified")).strip().lower() == "false":  # False, or "false"
        return _refused(f"You are signed in as {shown}, but the identity provider says this "
                        "email is not verified, so it cannot be checked against the "
                        "allow-list.")
    if allowed.empty:
        return _refused(f"You are signed in as {shown}, but nobody may read this dashboard "
                        "yet: [dashboard] allowed_emails and allowed_domains are both empty. "
                        "The operator lists who may (`allowed_domains = [\"*\"]` for anyone "
                        "the provider vouches for).")
    if not allowed.allows(email):
        return _refused(f"You are signed in as {shown}, which is not on this dashboard's "
                        "allow-list ([dashboard] allowed_emails / allowed_domains). Sign out "
                        "and sign in with another account, or ask the operator to add you.")
    return Access(True, True, True, email, False, True, True, f"Signed in as {shown}.")


def _refused(message: str) -> Access:
    return Access(True, False, False, None, False, True, True, message)


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


def current_access(settings: DashboardConfig) -> Access:
    """:func:`decide` for this Streamlit session, under ``[dashboard]`` ``settings``."""
    import streamlit as st
    from streamlit.auth_util import is_authlib_installed

    address = st.get_option("server.address")
    user: Mapping[str, Any] = dict(st.user.to_dict())
    installed = is_authlib_installed()
    return decide(
        address=str(address) if address is not None else None,
        require_login=settings.require_login,
        os_user=local_user(),
        authlib_installed=installed,
        auth_problem=auth_problem(settings.auth_provider) if installed else None,
        user=user,
        allowed=AllowList.of(settings.allowed_emails, settings.allowed_domains),
    )
