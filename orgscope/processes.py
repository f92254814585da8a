"""Child processes orgscope starts: the Streamlit dashboard.

The dashboard is a separate process (Streamlit owns its server and event loop); it finds the
config through $ORGSCOPE_CONFIG and reads the store read-only.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from orgscope.config import Config
from orgscope.wiring import CONFIG_ENV, STORE_ENV, store_base

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parent.parent / "dashboard" / "streamlit_app.py"


def dashboard_command(config: Config, port: int | None = None) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", config.dashboard.address,
        "--server.port", str(port or config.dashboard.port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]


def dashboard_env(config: Config, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env[CONFIG_ENV] = str(Path(config.source).resolve())
    env[STORE_ENV] = store_base(config)
    if extra:
        env.update(extra)
    return env


def start_dashboard(config: Config, port: int | None = None,
                    extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    command = dashboard_command(config, port)
    log.info("starting dashboard on http://%s:%s", config.dashboard.address,
             port or config.dashboard.port)
    return subprocess.Popen(command, env=dashboard_env(config, extra_env))


def run_dashboard(config: Config, port: int | None = None) -> int:
    process = start_dashboard(config, port)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
