"""Child processes orgscope starts: the Streamlit dashboard, and how they are stopped.

The dashboard is a separate process (Streamlit owns its server and event loop); it finds the
config through $ORGSCOPE_CONFIG and reads the store read-only.

SIGTERM (what ``systemctl stop``, Docker and supervisors send) and SIGINT stop a command that
started children: :func:`stop_on_signals` turns them into a stop request, and
:func:`stop_children` passes SIGTERM on to every child, waits :data:`STOP_TIMEOUT_S` and kills
what is left, so no child outlives the command or keeps its port. A command stopped that way
exits with status 0.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from orgscope.config import Config
from orgscope.wiring import CONFIG_ENV, STORE_ENV, store_base

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parent.parent / "dashboard" / "streamlit_app.py"
#: The signals that stop a long-running command and its children.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How long a child has to exit after SIGTERM before it is killed (Docker waits 10 s).
STOP_TIMEOUT_S = 8.0


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGTERM or SIGINT sets while the block runs, instead of ending the process
    before its children are stopped; the previous handlers are back after it. Outside the main
    thread (where Python allows no handler) the event is only set by whoever holds it."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_children(processes: Iterable[subprocess.Popen[bytes]],
                  timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every child still running, wait up to ``timeout_s`` for them all, then SIGKILL
    what is left; every child is reaped when this returns."""
    running = [p for p in processes if p.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("child %d did not exit %.0fs after SIGTERM: killing it", process.pid,
                        timeout_s)
            process.kill()
            process.wait()


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
    """Run the dashboard until it exits (its status) or SIGTERM/SIGINT stops it (0)."""
    with stop_on_signals() as stop:
        process = start_dashboard(config, port)
        try:
            while process.poll() is None and not stop.wait(0.2):
                pass
        finally:
            stop_children([process])
    return 0 if stop.is_set() else process.returncode
