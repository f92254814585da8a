"""[dashboard] allowed_emails / allowed_domains: validated at start-up, one clear line per
malformed entry, stored lower-case (dashboard/access.py compares case-insensitively)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orgscope.config import ConfigError
from orgscope.plugins import parse_config


def _dashboard(config_data: dict[str, Any], **keys: Any) -> dict[str, Any]:
    return {**config_data, "dashboard": {**config_data.get("dashboard", {}), **keys}}


def _errors(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "cfg.toml")
    return caught.value.lines


def test_allow_lists_default_to_empty(config_data: dict[str, Any]) -> None:
    dashboard = parse_config(config_data, "cfg.toml").dashboard
    assert (dashboard.allowed_emails, dashboard.allowed_domains) == ([], [])


def test_entries_are_kept_lower_case(config_data: dict[str, Any]) -> None:
    dashboard = parse_config(_dashboard(
        config_data, allowed_emails=[" Ana@Example.COM "],
        allowed_domains=["Partner.Example", "xn--bcher-kva.example"]), "cfg.toml").dashboard
    assert dashboard.allowed_emails == ["ana@example.com"]
    assert dashboard.allowed_domains == ["partner.example", "xn--bcher-kva.example"]


def test_a_star_alone_allows_any_domain(config_data: dict[str, Any]) -> None:
    assert parse_config(_dashboard(config_data, allowed_domains=["*"]),
                        "cfg.toml").dashboard.allowed_domains == ["*"]


@pytest.mark.parametrize(("key", "entry", "says"), [
    ("allowed_domains", "@example.com", "without the @: 'example.com'"),
    ("allowed_domains", "ana@example.com", "is an email address: put it in allowed_emails"),
    ("allowed_domains", "*.example.com", "wildcards are not matched"),
    ("allowed_domains", "example", "at least one dot"),
    ("allowed_domains", "exa mple.com", "must be a domain name such as 'example.com'"),
    ("allowed_domains", "-bad.example.com", "must be a domain name"),
    ("allowed_domains", "example..com", "must be a domain name"),
    ("allowed_domains", "", "must be a domain name"),
    ("allowed_emails", "ana", "must be one email address such as 'ana@example.com'"),
    ("allowed_emails", "@example.com", "must be one email address"),
    ("allowed_emails", "ana@", "has no valid domain after the @ ('')"),
    ("allowed_emails", "ana@example", "has no valid domain after the @ ('example')"),
    ("allowed_emails", "ana smith@example.com", "no spaces"),
    ("allowed_emails", "a@b@example.com", "one @"),
    ("allowed_emails", "*@example.com", "put the domain in allowed_domains"),
])
def test_a_malformed_entry_is_one_line_naming_it(config_data: dict[str, Any], key: str,
                                                entry: str, says: str) -> None:
    valid = "example.com" if key == "allowed_domains" else "ana@example.com"
    (line,) = _errors(_dashboard(config_data, **{key: [valid, entry]}))
    assert line.startswith(f"cfg.toml: dashboard.{key}[1] = {entry!r}"), line
    assert says in line, line


def test_a_star_among_domains_is_refused(config_data: dict[str, Any]) -> None:
    (line,) = _errors(_dashboard(config_data, allowed_domains=["*", "example.com"]))
    assert "'*' already allows every domain" in line, line


def test_not_a_list_says_so(config_data: dict[str, Any]) -> None:
    (line,) = _errors(_dashboard(config_data, allowed_domains="example.com"))
    assert "dashboard.allowed_domains" in line and "list" in line, line


def test_check_config_says_an_exposed_dashboard_needs_sign_in_and_readers(
        config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from orgscope.cli import main

    text = config_file.read_text()
    assert 'address = "127.0.0.1"' in text
    config_file.write_text(text.replace('address = "127.0.0.1"', 'address = "0.0.0.0"'))
    assert main(["--config", str(config_file), "check-config", "--no-aws"]) == 0
    out = capsys.readouterr().out
    assert "requires sign-in (address '0.0.0.0' is not loopback)" in out
    assert "nobody may read the dashboard" in out
    config_file.write_text(text.replace('require_login = "auto"', 'require_login = "always"')
                           .replace("allowed_domains = []", 'allowed_domains = ["example.com"]'))
    assert main(["--config", str(config_file), "check-config", "--no-aws"]) == 0
    out = capsys.readouterr().out
    assert 'requires sign-in (require_login = "always")' in out
    assert "nobody may read" not in out
