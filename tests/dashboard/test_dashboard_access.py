"""Who may change things from the dashboard: loopback = the local user; exposed = signed in."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from dashboard.access import auth_problem, decide, is_loopback


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost",
                                     " LOCALHOST "])
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "", None, "10.0.3.7", "192.168.1.2",
                                     "dashboard.internal", "localhost.example.com"])
def test_every_other_address_is_exposed(address: str | None) -> None:
    assert not is_loopback(address)


def _decide(address: str | None = "127.0.0.1", *, require_login: Any = "auto",
            installed: bool = True, problem: str | None = None,
            user: dict[str, Any] | None = None) -> Any:
    return decide(address=address, require_login=require_login, os_user="sre",
                  authlib_installed=installed, auth_problem=problem, user=user or {})


def test_on_loopback_the_local_user_acts_without_signing_in() -> None:
    access = _decide("127.0.0.1", problem="no secrets.toml")
    assert (access.exposed, access.can_change, access.actor, access.offer_login) == \
        (False, True, "local:sre", False)


def test_exposed_and_signed_in_acts_as_the_email() -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": True, "email": "ana@example.com"})
    assert (access.exposed, access.can_change, access.actor) == (True, True, "ana@example.com")


def test_exposed_and_signed_out_is_offered_the_sign_in() -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": False})
    assert (access.can_change, access.actor, access.offer_login) == (False, None, True)
    assert "sign in" in access.message


def test_exposed_without_a_provider_disables_changes_and_says_why() -> None:
    access = _decide("10.0.0.5", problem="secrets.toml has no [auth] section")
    assert (access.can_change, access.offer_login) == (False, False)
    assert "no [auth] section" in access.message and "disabled" in access.message


def test_exposed_without_authlib_disables_changes_and_names_the_package() -> None:
    access = _decide("", installed=False)
    assert (access.can_change, access.offer_login) == (False, False)
    assert "Authlib" in access.message and "every interface" in access.message


def test_signed_in_without_an_email_claim_cannot_act() -> None:
    access = _decide("0.0.0.0", user={"is_logged_in": True, "name": "Ana"})
    assert (access.can_change, access.actor) == (False, None)
    assert "email" in access.message


def test_always_requires_sign_in_even_on_loopback() -> None:
    access = _decide("127.0.0.1", require_login="always", user={"is_logged_in": False})
    assert (access.exposed, access.can_change, access.offer_login) == (True, False, True)
    signed = _decide("127.0.0.1", require_login="always",
                     user={"is_logged_in": True, "email": "bob@example.com"})
    assert signed.actor == "bob@example.com"


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
