"""Who may read and change things from the dashboard: loopback = the local user; exposed =
signed in and on the allow-list."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from dashboard.access import (
    Access,
    AllowList,
    auth_problem,
    decide,
    is_loopback,
)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost",
                                     " LOCALHOST "])
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "", None, "10.0.3.7", "192.168.1.2",
                                     "dashboard.internal", "localhost.example.com"])
def test_every_other_address_is_exposed(address: str | None) -> None:
    assert not is_loopback(address)


ALLOWED = AllowList.of(["ana@example.com", "bob@example.com"], ["partner.example"])


def _decide(address: str | None = "127.0.0.1", *, require_login: Any = "auto",
            installed: bool = True, problem: str | None = None,
            user: dict[str, Any] | None = None, allowed: AllowList = ALLOWED) -> Access:
    return decide(address=address, require_login=require_login, os_user="sre",
                  authlib_installed=installed, auth_problem=problem, user=user or {},
                  allowed=allowed)


def test_on_loopback_the_local_user_reads_and_acts_without_signing_in() -> None:
    access = _decide("127.0.0.1", problem="no secrets.toml", allowed=AllowList())
    assert (access.exposed, access.can_read, access.can_change, access.actor,
            access.offer_login, access.offer_logout) == \
        (False, True, True, "local:sre", False, False)


def test_exposed_and_signed_in_reads_and_acts_as_the_email() -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": "ana@example.com"})
    assert (access.exposed, access.can_read, access.can_change, access.actor,
            access.offer_logout) == (True, True, True, "ana@example.com", True)


def test_exposed_and_signed_out_reads_nothing_and_is_offered_the_sign_in() -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": False})
    assert (access.can_read, access.can_change, access.actor, access.offer_login) == \
        (False, False, None, True)
    assert "sign in to read" in access.message


def test_exposed_without_a_provider_reads_nothing_and_says_how_to_configure() -> None:
    access = _decide("10.0.0.5", problem="secrets.toml has no [auth] section")
    assert (access.can_read, access.can_change, access.offer_login) == (False, False, False)
    assert "no [auth] section" in access.message and "Nothing is shown" in access.message
    assert "secrets.toml" in access.message and "127.0.0.1" in access.message


def test_exposed_without_authlib_reads_nothing_and_names_the_package() -> None:
    access = _decide("", installed=False)
    assert (access.can_read, access.can_change, access.offer_login) == (False, False, False)
    assert "Authlib" in access.message and "every interface" in access.message


def test_signed_in_without_an_email_claim_is_refused() -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": True, "name": "Ana"})
    assert (access.can_read, access.can_change, access.actor, access.offer_logout) == \
        (False, False, None, True)
    assert "email" in access.message


def test_always_requires_sign_in_even_on_loopback() -> None:
    access = _decide("127.0.0.1", require_login="always", user={"is_logged_in": False})
    assert (access.exposed, access.can_read, access.offer_login) == (True, False, True)
    signed = _decide("127.0.0.1", require_login="always",
                     user={"is_logged_in": True, "email": "bob@example.com"})
    assert (signed.can_read, signed.actor) == (True, "bob@example.com")


@pytest.mark.parametrize("email", ["ana@example.com", "ANA@Example.COM", " bob@example.com ",
                                   "carol@partner.example", "Dan@PARTNER.example"])
def test_the_allow_list_matches_emails_and_domains_case_insensitively(email: str) -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": email})
    assert access.can_read and access.actor == email.strip()


@pytest.mark.parametrize("email", [
    "eve@example.com",              # the domain of a listed email is not listed
    "eve@evil-partner.example",     # a domain that merely ends like a listed one
    "eve@sub.partner.example",      # subdomains match only when listed themselves
    "eve@partner.example.evil.com", # the listed domain as a prefix
    "partner.example",              # no @ at all
    "@partner.example",             # no local part
    "ana@example.com@evil.com",     # the domain is what follows the last @
    "eve@partner.example.",         # not the exact domain
])
def test_everyone_else_is_refused_with_a_sign_out(email: str) -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": email})
    assert (access.can_read, access.can_change, access.actor, access.offer_login,
            access.offer_logout) == (False, False, None, False, True)
    assert "not on this dashboard's allow-list" in access.message


def test_an_empty_allow_list_refuses_every_signed_in_user_and_says_how_to_allow() -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": "ana@example.com"},
                     allowed=AllowList())
    assert (access.can_read, access.offer_logout) == (False, True)
    assert "both empty" in access.message and 'allowed_domains = ["*"]' in access.message


def test_a_star_allows_whoever_the_provider_vouches_for() -> None:
    anyone = AllowList.of(domains=["*"])
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": "x@anywhere.example"},
                     allowed=anyone)
    assert (access.can_read, access.actor) == (True, "x@anywhere.example")
    assert not _decide("0.0.0.0", user={"is_logged_in": True, "email": "no-at-sign"},
                       allowed=anyone).can_read


@pytest.mark.parametrize("verified", [False, "false", "False"])
def test_an_email_the_provider_says_is_unverified_is_refused(verified: object) -> None:
    """Some providers send the claim as a string: "false" is unverified too."""
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": "ana@example.com",
                                      "email_verified": verified})
    assert (access.can_read, access.offer_logout) == (False, True)
    assert "not verified" in access.message


def test_an_email_in_a_message_never_becomes_markup_nor_a_link() -> None:
    email = "[x](https://evil.example)`_@partner.example"
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": email})
    assert access.can_read and access.actor == email
    # literal text, never a link (a bare email would become a mailto: link): the markdown
    # characters escaped, the autolinks broken by a word joiner (orgscope.untrusted.markdown)
    assert access.message == ("Signed in as \\[x\\]\\(https:\u2060//evil.example\\)\\`\\_"
                              "\\@\u2060partner.example.")


AUTH = {"redirect_uri": "https://orgscope.example.com/oauth2callback",
        "cookie_secret": "0123456789abcdef0123456789abcdef",
        "client_id": "orgscope", "client_secret": "s3cret",
        "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration"}


def test_auth_problem_is_streamlits_own_check_of_secrets_toml(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.runtime.secrets import secrets_singleton

    monkeypatch.setattr(secrets_singleton, "_secrets", {"auth": AUTH})
    assert auth_problem("") is None
    monkeypatch.setattr(secrets_singleton, "_secrets", {"auth": {**AUTH, "okta": AUTH}})
    assert auth_problem("okta") is None
    missing = {k: v for k, v in AUTH.items() if k != "cookie_secret"}
    monkeypatch.setattr(secrets_singleton, "_secrets", {"auth": missing})
    assert "cookie_secret" in str(auth_problem(""))
    monkeypatch.setattr(secrets_singleton, "_secrets", {"other": 1})
    assert "secrets.toml" in str(auth_problem(""))


def test_authlib_is_installed_so_sign_in_can_work() -> None:
    from streamlit.auth_util import is_authlib_installed

    assert is_authlib_installed(), "requirements.txt pins Authlib for st.login"


def test_the_secrets_file_stays_out_of_git() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", "dashboard/.streamlit/secrets.toml"],
                             cwd=Path(__file__).resolve().parents[2], check=False)
    assert ignored.returncode == 0, "secrets.toml (st.login's client secret) must be ignored"


def test_the_message_says_why_sign_in_is_needed() -> None:
    assert "require_login" in _decide("127.0.0.1", require_login="always").message
    assert "exposed (on '10.0.0.5')" in _decide("10.0.0.5").message
