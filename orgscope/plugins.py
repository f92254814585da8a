"""The composition root's registries: what this orgscope is made of.

The spine (the rest of orgscope/) defines contracts (a collector, a dataset, a step, the
config file's sections) and never imports a plug-in package. This module, with
:mod:`orgscope.wiring` and the entry points (cli, demo, the dashboard app), is where the
plug-ins are put together:

* the collectors (collectors/registry.py), and from their self-descriptions the config
  model (:func:`config_model`: one ``[collectors.NAME]`` section per collector, typed by its
  ``settings`` model), the read role's actions (:func:`read_actions`);
* the steps that follow collection, in data-flow order (:data:`STEPS`): verdicts before the
  auto-heal that reads them, both before the alerts that report them;
* the alert rules (alerts/rules.py) and heal actions (heal/actions.py).

docs/architecture.md, "Where does X go", walks a new collector, alert rule, heal action and
page through these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from pydantic import Field, create_model

from alerts.rule import AlertRule
from alerts.rules import ALERT_RULES
from alerts.step import run_alerts
from collectors import registry
from collectors.inventory import reread_collector
from heal.actions import ACTIONS, HealAction
from heal.run import run_heal
from orgscope import config as config_module
from orgscope import steps
from orgscope.changes import RuleChange
from orgscope.collect import Collector
from orgscope.config import AlertRuleSections, AlertsConfig, CollectorSections, Config
from orgscope.cost.flow_update import update_flow_cost
from orgscope.health.update import update_rule_health, verdict_summary
from orgscope.runner import Runner
from orgscope.steps import Step
from orgscope.traces.export import export_collection, export_traces
from orgscope.traces.update import update_traces

#: Every collector, by name (collectors/registry.py).
COLLECTORS: dict[str, Collector] = registry.COLLECTORS
#: Every alert rule, by name (alerts/rules.py).
ALERTS: dict[str, AlertRule[Any]] = {rule.name: rule for rule in ALERT_RULES}
#: Every heal action, by name (heal/actions.py).
HEAL_ACTIONS: dict[str, HealAction] = {action.name: action for action in ACTIONS}


# --- config ----------------------------------------------------------------------------------


def _collector_settings() -> type[CollectorSections]:
    fields: dict[str, Any] = {name: (c.settings, Field(default_factory=c.settings))
                              for name, c in COLLECTORS.items()}
    model = create_model("CollectorSettings", __base__=CollectorSections,
                         __module__=__name__, **fields)
    return cast(type[CollectorSections], model)


#: ``[collectors.NAME]``: one field per registered collector, typed by its ``settings`` model
#: (its defaults when the file has no section for it).
CollectorSettings = _collector_settings()


def _alert_rule_settings() -> type[AlertRuleSections]:
    fields: dict[str, Any] = {rule.name: (rule.settings, Field(default_factory=rule.settings))
                              for rule in ALERT_RULES}
    model = create_model("AlertRuleSettings", __base__=AlertRuleSections,
                         __module__=__name__, **fields)
    return cast(type[AlertRuleSections], model)


#: ``[alerts.rules.NAME]``: one field per alert rule, typed by its ``settings`` model.
AlertRuleSettings = _alert_rule_settings()


def _plugged_alerts() -> type[AlertsConfig]:
    fields: dict[str, Any] = {"rules": (AlertRuleSettings,
                                        Field(default_factory=AlertRuleSettings))}
    return cast(type[AlertsConfig], create_model("PluggedAlertsConfig", __base__=AlertsConfig,
                                                 __module__=__name__, **fields))


#: ``[alerts]`` with every alert rule's section.
PluggedAlertsConfig = _plugged_alerts()


def _plugged_config() -> type[Config]:
    fields: dict[str, Any] = {
        "collectors": (CollectorSettings, Field(default_factory=CollectorSettings)),
        "alerts": (PluggedAlertsConfig, Field(default_factory=PluggedAlertsConfig))}
    return cast(type[Config], create_model("PluggedConfig", __base__=Config,
                                           __module__=__name__, **fields))


#: :class:`Config` with the registered collectors' sections: what config.toml is read as.
#: Each built class is a module attribute under its own name, so a Config pickles (the
#: dashboard caches it).
PluggedConfig = _plugged_config()


def config_model() -> type[Config]:
    """The config model of this composition: :data:`PluggedConfig`."""
    return PluggedConfig


def parse_config(data: dict[str, Any], source: str = "config.toml") -> Config:
    """Validate config data (:func:`orgscope.config.parse_config` with :func:`config_model`)."""
    return config_module.parse_config(data, source, model=config_model())


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; :class:`orgscope.config.ConfigError` for every user
    mistake."""
    return config_module.load_config(path, model=config_model())


def read_actions() -> list[str]:
    """Every IAM action the collectors call through the read role, sorted."""
    return registry.read_actions()


# --- steps -----------------------------------------------------------------------------------


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


def _flow_cost(runner: Runner) -> str | None:
    return update_flow_cost(runner.config, runner.store)


def _alerts(runner: Runner) -> str | None:
    return run_alerts(runner.config, runner.store, runner.factory).summary()


#: Every step, in the order they run. Collectors name the steps they feed (``feeds``).
STEPS: tuple[Step, ...] = (
    Step("health", _health),
    Step("traces", _traces),
    Step("heal", _heal),
    # cost lines split over event flows by events delivered (docs/cost.md)
    Step("flow_cost", _flow_cost),
    # orgscope's own collection runs as OTLP spans (docs/traces.md, "Export")
    Step("export", _export, after_every_collector=True),
    # last: it reports what the steps above derived (verdicts, traces, heal actions)
    Step("alerts", _alerts, after_every_collector=True),
)


def triggered(collector_names: Sequence[str]) -> list[Step]:
    """The steps that follow runs of ``collector_names``, in running order."""
    return steps.triggered(STEPS, COLLECTORS, collector_names)


def run_steps(runner: Runner, collector_names: Sequence[str]) -> dict[str, str | None]:
    """Run the steps that follow ``collector_names`` (:func:`orgscope.steps.run_steps`)."""
    return steps.run_steps(runner, triggered(collector_names))


def reread(changes: Sequence[RuleChange]) -> Collector:
    """The inventory collector that re-reads what one account and region's change events name
    (:func:`collectors.inventory.reread_collector`; orgscope/change_feed.py)."""
    return reread_collector(changes)


def collector(name: str) -> Collector:
    """The collector called ``name``; KeyError names the known ones."""
    return registry.get(name)
