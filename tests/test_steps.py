"""The registry of post-collection steps: which run, in what order, and failure isolation."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from orgscope import plugins
from orgscope.collect import Collector
from orgscope.plugins import triggered
from orgscope.steps import Step, run_steps
from orgscope.steps import triggered as triggered_by


def test_health_runs_after_the_collectors_it_reads() -> None:
    names = [s.name for s in triggered(["metrics"])]
    assert names[0] == "health" and names[-1] == "alerts"
    assert "health" not in [s.name for s in triggered(["cost"])]


def test_a_failing_step_is_logged_and_the_next_still_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def boom(_runner: Any) -> str | None:
        ran.append("boom")
        raise RuntimeError("disk full")

    def fine(_runner: Any) -> str | None:
        ran.append("fine")
        return "fine: 3 rows"

    all_steps = (Step("boom", boom), Step("fine", fine), Step("other", fine))
    feeding = {name: Collector(name, fn=lambda ctx: {}, datasets=(), scope="regional",
                               description=name, iam_actions=(), feeds=feeds)
               for name, feeds in (("a", ("boom", "fine")), ("b", ("fine",)),
                                   ("c", ("other",)))}
    with caplog.at_level(logging.ERROR, logger="orgscope.steps"):
        summaries = run_steps(SimpleNamespace(runs_org_steps=True),  # type: ignore[arg-type]
                              triggered_by(all_steps, feeding, ["a"]))
    assert ran == ["boom", "fine"]
    assert summaries == {"boom": None, "fine": "fine: 3 rows"}
    assert "step boom failed" in caplog.text


def test_heal_runs_after_health_on_every_inventory() -> None:
    names = [s.name for s in triggered(["inventory"])]
    assert names.index("heal") > names.index("health")
    assert "heal" not in [s.name for s in triggered(["metrics", "cost"])]


def test_alerts_run_last_after_every_collector() -> None:

    for name in plugins.COLLECTORS:
        assert [s.name for s in triggered([name])][-1] == "alerts"
    assert plugins.STEPS[-1].name == "alerts"
