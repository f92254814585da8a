"""config.toml written back: a validated :class:`~orgscope.config.Config` as TOML text.

``orgscope demo`` hands its dashboard the config it really collects with (the simulator's
endpoint, one-minute intervals, auto-heal on), and the scaling benchmark hands the CLI a
generated organization, both as files the normal loader reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from orgscope.config import Config, format_interval, load_config

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(data: Mapping[str, Any]) -> str:
    """Config data (tables, arrays of tables, strings, numbers, booleans, lists) as TOML text,
    so that a generated organization can be handed to the ``orgscope`` command."""

    def key(name: str) -> str:
        return name if _BARE_KEY.match(name) else json.dumps(name)

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)  # a TOML basic string: the same escapes
        if isinstance(item, Mapping):
            return "{ " + ", ".join(f"{key(k)} = {value(v)}" for k, v in item.items()) + " }"
        if isinstance(item, list | tuple):
            return "[" + ", ".join(value(v) for v in item) + "]"
        raise TypeError(f"cannot write {type(item).__name__} as TOML: {item!r}")

    def is_table_array(item: Any) -> bool:
        return isinstance(item, list) and bool(item) and all(isinstance(v, Mapping)
                                                             for v in item)

    lines: list[str] = []

    def table(path: list[str], body: Mapping[str, Any], header: str | None) -> None:
        if header is not None:
            lines.extend(["", header])
        for name, item in body.items():
            if not isinstance(item, Mapping) and not is_table_array(item):
                lines.append(f"{key(name)} = {value(item)}")
        for name, item in body.items():
            here = [*path, key(name)]
            if isinstance(item, Mapping):
                table(here, item, f"[{'.'.join(here)}]")
            elif is_table_array(item):
                for entry in item:
                    table(here, entry, f"[[{'.'.join(here)}]]")

    table([], data, None)
    return "\n".join(lines).lstrip("\n") + "\n"


def _plain(value: Any) -> Any:
    """Config values as config.toml spells them: spans as "5m", dates as ISO text, no nulls."""
    if isinstance(value, timedelta):
        return format_interval(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def config_data(config: Config) -> dict[str, Any]:
    """``config`` as the data of a config.toml that loads back to the same Config."""
    data: dict[str, Any] = _plain(config.model_dump(mode="python", exclude={"source"}))
    return data


def write_config(config: Config, path: Path) -> Config:
    """Write ``config`` to ``path`` and load it back (so a value that would not survive the
    trip fails here, not in the process that reads the file); the loaded Config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(config_data(config)))
    return load_config(path, model=type(config))
