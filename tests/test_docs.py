"""docs/ stays true: every dataset column and every config key is documented."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from orgscope.config import (
    AccountConfig,
    AlertsConfig,
    AwsConfig,
    CollectorConfig,
    CostCollectorConfig,
    CostConfig,
    DashboardConfig,
    DlqCollectorConfig,
    ExportConfig,
    HealConfig,
    HealthConfig,
    MetricsCollectorConfig,
    OrganizationConfig,
    OtelCollectorConfig,
    OtlpFilesCollectorConfig,
    SlackConfig,
    StoreConfig,
    TracesConfig,
    XrayCollectorConfig,
)
from orgscope.datasets import all_datasets

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


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "config.md").read_text()
    models: dict[str, type[BaseModel]] = {
        "## [organization]": OrganizationConfig, "## [aws]": AwsConfig,
        "## [[accounts]]": AccountConfig, "## [collectors.NAME]": CollectorConfig,
        "## [collectors.metrics]": MetricsCollectorConfig,
        "## [collectors.dlq]": DlqCollectorConfig,
        "## [collectors.cost]": CostCollectorConfig,
        "## [collectors.xray]": XrayCollectorConfig, "## [health]": HealthConfig,
        "## [collectors.otel]": OtelCollectorConfig,
        "## [collectors.otlp_files]": OtlpFilesCollectorConfig,
        "## [traces]": TracesConfig, "## [export]": ExportConfig,
        "## [cost]": CostConfig,
        "## [store]": StoreConfig, "## [alerts]": AlertsConfig, "## [slack]": SlackConfig,
        "## [heal]": HealConfig, "## [dashboard]": DashboardConfig,
    }
    for heading, model in models.items():
        body = section(text, heading)
        own = set(model.model_fields) - (
            set(CollectorConfig.model_fields) if model is not CollectorConfig else set())
        for key in own:
            assert f"| `{key}` |" in body, f"{heading} {key} missing from config.md"
