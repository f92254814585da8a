"""docs/ stays true: every dataset column and every config key is documented."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from orgscope.config import AccountConfig, AlertRuleConfig, CollectorConfig, Config
from orgscope.datasets import all_datasets
from orgscope.plugins import ALERTS, COLLECTORS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start: end if end != -1 else len(text)]


def test_every_dataset_and_column_is_documented() -> None:
    text = (DOCS / "datasets.md").read_text()
    for dataset in all_datasets():
        heading = f"## {dataset.name}\n" if f"## {dataset.name}\n" in text else \
            f"## {dataset.name} ("
        body = section(text, heading)
        for column in dataset.columns:
            assert f"| {column} |" in body, f"{dataset.name}.{column} missing from datasets.md"


def documented_models() -> dict[str, type[BaseModel]]:
    """config.md's heading -> the model whose keys it must list: every section of
    :class:`Config` and every collector's own settings model (from the registry, so a new
    section or collector cannot go undocumented)."""
    models: dict[str, type[BaseModel]] = {"## [[accounts]]": AccountConfig,
                                          "## [collectors.NAME]": CollectorConfig}
    for name, field in Config.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) \
                and name != "collectors":
            models[f"## [{name}]"] = field.annotation
    for name, collector in COLLECTORS.items():
        if collector.settings is not CollectorConfig:
            models[f"## [collectors.{name}]"] = collector.settings
    return models


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "config.md").read_text()
    models = documented_models()
    assert len(models) >= 19
    for heading, model in models.items():
        body = section(text, heading)
        own = set(model.model_fields) - (
            set(CollectorConfig.model_fields) if model is not CollectorConfig else set())
        for key in own:
            assert f"| `{key}` |" in body, f"{heading} {key} missing from config.md"


def test_every_alert_rule_and_its_own_keys_are_documented() -> None:
    """From the rule registry: each rule in docs/alerts.md's table, and in config.md's
    [alerts.rules.NAME] table with every key of its own settings model."""
    alerts_md = (DOCS / "alerts.md").read_text()
    rules_md = section((DOCS / "config.md").read_text(), "### [alerts.rules.NAME]")
    common = set(AlertRuleConfig.model_fields)
    for name, rule in ALERTS.items():
        assert f"| `{name}` |" in alerts_md, f"alert rule {name} missing from alerts.md"
        row = next((line for line in rules_md.splitlines() if line.startswith(f"| `{name}` |")),
                   None)
        assert row is not None, f"alert rule {name} missing from config.md"
        for key in set(rule.settings.model_fields) - common:
            assert f"`{key}`" in row, f"[alerts.rules.{name}] {key} missing from config.md"


#: The packages docs/architecture.md's module table covers.
PACKAGES = ("orgscope", "collectors", "alerts", "heal", "dashboard", "sim", "testkit")


def test_the_module_table_names_every_module_and_only_modules_that_exist() -> None:
    """docs/architecture.md, "Modules": every module of the tree by its path, and no path
    that is not in the tree."""
    root = DOCS.parent
    text = section((DOCS / "architecture.md").read_text(), "## Modules")
    modules = {path.relative_to(root).as_posix() for package in PACKAGES
               for path in (root / package).rglob("*.py") if path.name != "__init__.py"}
    named = set(re.findall(r"`((?:[a-z_]+/)+[a-z_]+\.py)`", text))
    assert sorted(modules - named) == [], "modules missing from docs/architecture.md"
    assert sorted(named - modules) == [], "docs/architecture.md names modules that do not exist"


def test_every_test_the_fault_matrix_names_exists() -> None:
    """docs/reliability.md's rows name the tests that prove them: each file and test exists
    (``tests/x.py::name`` or ``::name`` after an earlier file of the same cell), and the
    matrix names at least one test per section."""
    root = DOCS.parent
    named = 0
    for line in (DOCS / "reliability.md").read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| fault") or line.startswith("|---"):
            continue
        current: Path | None = None
        for ref in re.findall(r"(tests/[\w/]+\.py|::test_\w+)", line):
            if ref.startswith("tests/"):
                current = root / ref
                assert current.is_file(), f"reliability.md names {ref}, which does not exist"
                continue
            assert current is not None, f"{ref} follows no test file: {line[:80]}"
            text = current.read_text()
            assert re.search(rf"def {ref[2:]}\b", text), \
                f"reliability.md names {current.relative_to(root)}{ref}, which does not exist"
            named += 1
    assert named >= 40
