"""Silences: matching, create/expire through the store, config sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.silences import (
    SilenceError,
    SilenceSpec,
    config_silence_id,
    create_silence,
    expire_silence,
    matches,
    read_silences,
    silenced_by,
    sync_config_silences,
    validate_matchers,
)
from orgscope.datasets import all_datasets
from orgscope.store import Store

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LABELS = {"alert_name": "rule_disabled", "account_id": "999999999999", "team": "payments",
          "region": "us-east-1", "rule": "payment-processed", "bus": None}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path), all_datasets())


def test_matchers_exact_glob_and_missing_labels() -> None:
    assert matches({"team": "payments"}, LABELS)
    assert matches({"rule": "payment-*", "region": "us-east-?"}, LABELS)
    assert not matches({"team": "payments", "region": "eu-west-1"}, LABELS)
    assert not matches({"bus": "central-*"}, LABELS)  # null label is ''
    assert matches({"bus": "*", "team": "pay*"}, LABELS)
    assert not matches({"team": "Payments"}, LABELS)  # case-sensitive


@pytest.mark.parametrize(("matchers", "message"), [
    ({}, "at least one label"),
    ({"teem": "x"}, "unknown label 'teem'"),
    ({"team": ""}, "non-empty text pattern"),
    ({"team": "*", "rule": "**"}, "silence everything"),
])
def test_bad_matchers_are_refused(matchers: dict[str, str], message: str) -> None:
    with pytest.raises(SilenceError, match=message):
        validate_matchers(matchers)


def test_create_match_and_expire(store: Store) -> None:
    silence_id = create_silence(store, {"team": "payments"}, NOW + timedelta(hours=2),
                                "ana", "deploying payments", now=NOW)
    [silence] = read_silences(store)
    assert silence.id == silence_id and silence.source == "dashboard"
    assert silenced_by([silence], LABELS, NOW + timedelta(minutes=5)) == [silence_id]
    assert silenced_by([silence], LABELS, NOW + timedelta(hours=3)) == []  # ended
    assert silenced_by([silence], {**LABELS, "team": "orders"}, NOW) == []

    expire_silence(store, silence_id, "bo", now=NOW + timedelta(minutes=10))
    [expired] = read_silences(store)  # one row per id: the newest
    assert expired.expired_at == NOW + timedelta(minutes=10)
    assert expired.comment.endswith("(expired by bo)")
    assert silenced_by([expired], LABELS, NOW + timedelta(minutes=11)) == []
    with pytest.raises(SilenceError, match="already ended"):
        expire_silence(store, silence_id, "bo", now=NOW + timedelta(minutes=12))
    with pytest.raises(SilenceError, match="no silence"):
        expire_silence(store, "sil-nope", "bo", now=NOW)


def test_create_refuses_bad_times_and_missing_who_or_why(store: Store) -> None:
    with pytest.raises(SilenceError, match="must be later than now"):
        create_silence(store, {"team": "x"}, NOW - timedelta(minutes=1), "ana", "c", now=NOW)
    with pytest.raises(SilenceError, match="created_by"):
        create_silence(store, {"team": "x"}, NOW + timedelta(hours=1), " ", "c", now=NOW)
    with pytest.raises(SilenceError, match="comment"):
        create_silence(store, {"team": "x"}, NOW + timedelta(hours=1), "ana", "", now=NOW)
    assert read_silences(store) == []


def test_config_silences_sync_once_and_expire_when_removed(store: Store) -> None:
    spec = SilenceSpec(matchers={"account_id": "999999999999"}, ends_at=NOW + timedelta(days=1),
                       comment="payments migration")
    first = sync_config_silences(store, [spec], NOW)
    again = sync_config_silences(store, [spec], NOW + timedelta(minutes=1))
    assert [s.id for s in first] == [s.id for s in again] == [config_silence_id(spec)]
    assert len(store.files("silences")) == 1  # nothing written the second time
    with pytest.raises(SilenceError, match=r"config\.toml"):
        expire_silence(store, first[0].id, "ana", now=NOW)
    [removed] = sync_config_silences(store, [], NOW + timedelta(minutes=2))
    assert removed.expired_at == NOW + timedelta(minutes=2)
    assert not removed.active(NOW + timedelta(minutes=3))
    # the same entry put back (commented out, then in again) is in force again, same id
    [back] = sync_config_silences(store, [spec], NOW + timedelta(minutes=4))
    assert back.id == first[0].id and back.expired_at is None
    assert back.active(NOW + timedelta(minutes=5)) and back.comment == "payments migration"


def test_config_silences_and_rules_are_checked_at_start() -> None:
    import tomllib

    from orgscope.config import ConfigError
    from orgscope.plugins import parse_config
    from tests.alerts.alert_frames import ROOT

    data = tomllib.loads((ROOT / "config.toml").read_text())
    cases = {
        "silences": ([{"matchers": {"teem": "x"}, "ends_at": NOW, "comment": "c"}],
                     "matchers: unknown label(s) teem (allowed: key, alert_name"),
        "rules": ({"rule_disabled": {"for": "5 min"}},
                  "alerts.rules.rule_disabled.for = '5 min': must be a duration string"),
    }
    for key, (value, message) in cases.items():
        broken = {**data, "alerts": {**data["alerts"], key: value}}
        with pytest.raises(ConfigError) as caught:
            parse_config(broken)
        assert message in caught.value.lines[0]
    everything = {**data, "alerts": {**data["alerts"], "silences": [
        {"matchers": {"team": "*"}, "ends_at": NOW, "comment": "c"}]}}
    with pytest.raises(ConfigError, match="name at least one value"):
        parse_config(everything)
