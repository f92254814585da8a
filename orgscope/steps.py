"""The one registry of steps that run after collection: derived datasets, alerts, auto-heal.

Collectors read AWS and write their datasets; a *step* reads the store and writes what is
derived from it (rule verdicts, stitched traces, alerts, heal actions). Each step names the
collectors whose runs trigger it; after a cycle, ``run_steps`` runs, in the order of
``_ALL``, every step one of whose inputs just ran. The order is the data flow: verdicts before
the auto-heal that reads them, both before the alerts that report them.

Both ``orgscope serve`` (after every scheduled run) and ``orgscope collect --once`` call
``run_steps``. Adding a step is one function and one line in ``_ALL``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from alerts.step import run_alerts
from collectors import registry
from heal.run import run_heal
from orgscope.health.update import update_rule_health, verdict_summary
from orgscope.runner import Runner
from orgscope.traces.export import export_collection, export_traces
from orgscope.traces.update import update_traces

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """A derived computation over the store.

    ``run`` returns a one-line summary for the log and the CLI (or None for nothing to say);
    it may raise: ``run_steps`` logs the failure and goes on with the next step.
    """

    name: str
    inputs: frozenset[str]
    run: Callable[[Runner], str | None]
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)


def _health(runner: Runner) -> str | None:
    return verdict_summary(update_rule_health(runner.config, runner.store))


def _traces(runner: Runner) -> str | None:
    update = update_traces(runner.config, runner.store)
    sent = export_traces(runner.config, runner.store, update.current_spans,
                         since=update.since, now=update.at)
    return update.summary() + (f"; {sent}" if sent else "")


def _export(runner: Runner) -> str | None:
    return export_collection(runner.config, runner.store, datetime.now(UTC))


def _heal(runner: Runner) -> str | None:
    if not runner.config.heal.enabled:
        return "heal: off ([heal] enabled = false)"
    return run_heal(runner.config, runner.store, runner.factory).summary()


def _alerts(runner: Runner) -> str | None:
    return run_alerts(runner.config, runner.store, runner.factory).summary()


#: Every step, in the order they run.
_ALL: tuple[Step, ...] = (
    Step("health", frozenset({"inventory", "metrics", "dlq"}), _health),
    Step("traces", frozenset({"xray", "otel", "otlp_files"}), _traces),
    Step("heal", frozenset({"inventory"}), _heal),
    # orgscope's own collection runs as OTLP spans (docs/traces.md, "Export")
    Step("export", frozenset(registry.COLLECTORS), _export),
    # last: it reports what the steps above derived (verdicts, traces, heal actions)
    Step("alerts", frozenset(registry.COLLECTORS), _alerts),
)

STEPS: dict[str, Step] = {step.name: step for step in _ALL}


def triggered(collector_names: Iterable[str]) -> list[Step]:
    """The steps one of whose inputs is among ``collector_names``, in running order."""
    names = set(collector_names)
    return [step for step in _ALL if step.inputs & names]


def run_steps(runner: Runner, collector_names: Iterable[str]) -> dict[str, str | None]:
    """Run the steps triggered by ``collector_names``; one run of each step at a time.

    Returns each step's summary (None when it failed or had nothing to say). A failing step
    is logged with its traceback and never stops the ones after it. Steps read the whole
    organization, so a process collecting one account shard runs them only where
    ``[organization] org_steps`` says (by default shard 1; docs/scaling.md): none run elsewhere.
    """
    summaries: dict[str, str | None] = {}
    if not runner.runs_org_steps:
        log.debug("shard %s: org-wide steps run elsewhere ([organization] org_steps = %r)",
                  runner.shard.label, runner.config.organization.org_steps)
        return summaries
    for step in triggered(collector_names):
        with step.lock:
            try:
                summaries[step.name] = step.run(runner)
            except Exception:
                log.exception("step %s failed; its dataset is not updated", step.name)
                summaries[step.name] = None
    return summaries
