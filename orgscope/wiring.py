"""Wiring: build the process's one factory, store and runner from a config.

Entry points (CLI, scheduler, dashboard, tests) call these instead of constructing the pieces
themselves, so there is one place that knows how they fit together.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from orgscope.aws import SessionFactory
from orgscope.config import Config
from orgscope.datasets import all_datasets
from orgscope.plugins import load_config
from orgscope.runner import Runner, count_call
from orgscope.store import Store

CONFIG_ENV = "ORGSCOPE_CONFIG"
STORE_ENV = "ORGSCOPE_STORE"
DEFAULT_CONFIG = "config.toml"


def config_path(explicit: str | None = None) -> Path:
    """The config file to use: the explicit one, else $ORGSCOPE_CONFIG, else ./config.toml."""
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load(path: str | Path | None = None, store: str | None = None) -> Config:
    """Load and validate the config (each collector's section typed by its settings model).

    ``store`` (else $ORGSCOPE_STORE) overrides store.path: the demo and the dashboard it starts
    share a store that way without editing the file.
    """
    config = load_config(config_path(str(path) if path else None))
    override = store or os.environ.get(STORE_ENV)
    if override:
        config = with_store(config, override)
    return config


def with_store(config: Config, path: str) -> Config:
    return config.model_copy(update={"store": config.store.model_copy(update={"path": path})})


def store_base(config: Config) -> str:
    """store.path, with a relative folder taken relative to the config file's folder.

    An s3:// store takes ``aws.endpoint_url`` (when set, and the URL names no endpoint of its
    own) as its ``endpoint_override`` option, so a process given only this URL (the dashboard)
    reaches the same bucket as the collectors.
    """
    base = config.store.path
    if base.startswith("s3://"):
        return _with_s3_endpoint(base, config.aws.endpoint_url)
    if "://" in base or Path(base).is_absolute():
        return base
    return str((Path(config.source).resolve().parent / base).resolve())


def _with_s3_endpoint(url: str, endpoint: str) -> str:
    parts = urllib.parse.urlsplit(url)
    options = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not endpoint or any(key == "endpoint_override" for key, _ in options):
        return url
    query = urllib.parse.urlencode([*options, ("endpoint_override", endpoint)])
    return urllib.parse.urlunsplit(parts._replace(query=query))


def open_store(config: Config) -> Store:
    return Store(store_base(config), all_datasets())


def session_factory(config: Config) -> SessionFactory:
    """The process's session factory, counting every API call for the runs table."""
    return SessionFactory(config.aws, call_hook=count_call)


def runner(config: Config) -> Runner:
    return Runner(config, session_factory(config), open_store(config))
