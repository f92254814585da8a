"""The composition root holds the plug-ins to their own declarations, and the layers apart.

orgscope/plugins.py builds config, steps and the read role's actions from what each
collector, step, alert rule and heal action says of itself; these tests catch a declaration
that names something that does not exist, and an import that runs against the layering of
docs/architecture.md ("Layout").
"""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orgscope import plugins
from orgscope.access import REACHABILITY_COLLECTOR
from orgscope.ownership import team_tag_key

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PACKAGES = ("collectors", "alerts", "heal", "dashboard", "sim")
#: The composition root and the command line: the only modules of orgscope/ that put the
#: plug-ins together.
ROOT_MODULES = {"plugins.py", "wiring.py", "cli.py", "demo.py", "processes.py", "tables.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imports_of(package: str, *, skip: set[str] = frozenset()) -> dict[str, set[str]]:
    """module path -> the top-level packages and orgscope modules it imports."""
    result = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if path.relative_to(ROOT / package).as_posix() in skip:
            continue
        result[path.relative_to(ROOT).as_posix()] = imported_modules(path)
    return result


@pytest.mark.parametrize(("package", "forbidden", "skip"), [
    ("orgscope", (*PLUGIN_PACKAGES, "orgscope.plugins", "orgscope.wiring"), ROOT_MODULES),
    ("collectors", ("alerts", "heal", "dashboard", "sim", "orgscope.plugins"), set()),
    ("alerts", ("collectors", "heal", "dashboard", "sim", "orgscope.plugins"), set()),
    ("heal", ("collectors", "alerts", "dashboard", "sim", "orgscope.plugins"), set()),
])
def test_layers_import_only_downwards(package: str, forbidden: tuple[str, ...],
                                      skip: set[str]) -> None:
    wrong = {module: sorted(name for name in names
                            if any(name == f or name.startswith(f + ".") for f in forbidden))
             for module, names in imports_of(package, skip=skip).items()}
    assert {module: names for module, names in wrong.items() if names} == {}


def test_the_product_never_imports_tests_or_benchmarks() -> None:
    for package in ("orgscope", *PLUGIN_PACKAGES):
        for module, names in imports_of(package).items():
            assert not any(n.split(".")[0] in {"tests", "bench"} for n in names), module


def test_every_fed_step_exists_and_steps_run_in_data_flow_order() -> None:
    names = [step.name for step in plugins.STEPS]
    for collector in plugins.COLLECTORS.values():
        assert set(collector.feeds) <= set(names), collector.name
    assert names.index("health") < names.index("heal") < names.index("alerts")
    assert names[-1] == "alerts"


def test_one_collector_decides_reachability_and_the_alerts_read_its_runs() -> None:
    deciding = [c.name for c in plugins.COLLECTORS.values() if c.checks_reachability]
    assert deciding == [REACHABILITY_COLLECTOR]


def test_settings_the_spine_reads_by_name_exist(config: Any) -> None:
    """The spine reads a few collector settings by name (Config.collector_value): each must
    resolve on the registered settings models, with its type."""
    assert team_tag_key(config) == "Team"
    assert config.collector_value("metrics", "period_s", int) == 300
    for name in ("xray", "otel"):
        assert config.collector_value(name, "backfill", timedelta) > timedelta(0)
    with pytest.raises(KeyError, match=r"\[collectors.metrics\] has no int setting 'nope'"):
        config.collector_value("metrics", "nope", int)


def test_a_config_built_from_the_registry_pickles(config: Any) -> None:
    """The dashboard caches its Config (st.cache_data pickles): the dynamic model must be
    importable under its own name."""
    import pickle

    again = pickle.loads(pickle.dumps(config))
    assert again == config and type(again) is plugins.PluggedConfig


def test_each_collector_prices_itself() -> None:
    kinds = {name: c.settings().pricing().kind for name, c in plugins.COLLECTORS.items()}
    assert kinds["metrics"] == "chunked" and kinds["xray"] == "windowed"
    assert {kinds[n] for n in ("inventory", "dlq", "cost", "otel", "otlp_files")} == {"per_run"}
