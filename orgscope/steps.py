"""What a step is, and how the steps that follow a collection run.

Collectors read AWS and write their datasets; a *step* reads the store and writes what is
derived from it (rule verdicts, stitched traces, heal actions, alerts). Which steps exist, in
which order, is the composition root's (orgscope/plugins.py ``STEPS``); which collectors
trigger a step is each collector's own declaration (``Collector.feeds``), plus the steps that
follow every collector. Both ``orgscope serve`` (after every scheduled run) and ``orgscope
collect --once`` run them through :func:`orgscope.plugins.run_steps`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from orgscope.collect import Collector
from orgscope.runner import Runner

log = logging.getLogger(__name__)

#: What runs the steps after some collectors ran: (runner, collector names) -> summaries.
AfterRun = Callable[[Runner, Sequence[str]], dict[str, str | None]]


@dataclass(frozen=True)
class Step:
    """A derived computation over the store.

    ``run`` returns a one-line summary for the log and the CLI (or None for nothing to say);
    it may raise: :func:`run_steps` logs the failure and goes on with the next step.
    """

    name: str
    run: Callable[[Runner], str | None]
    #: It follows every collector's runs (it reports on all of them), not only the runs of
    #: the collectors that name it in ``feeds``.
    after_every_collector: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)


def triggered(steps: Sequence[Step], collectors: Mapping[str, Collector],
              collector_names: Iterable[str]) -> list[Step]:
    """The steps that follow runs of ``collector_names``, in running order: those the
    collectors feed, and those that follow every collector."""
    ran = [collectors[name] for name in collector_names if name in collectors]
    fed = {step for collector in ran for step in collector.feeds}
    return [step for step in steps if step.name in fed or (ran and step.after_every_collector)]


def run_steps(runner: Runner, steps: Sequence[Step]) -> dict[str, str | None]:
    """Run ``steps`` in order, one run of each step at a time.

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
    for step in steps:
        with step.lock:
            try:
                summaries[step.name] = step.run(runner)
            except Exception:
                log.exception("step %s failed; its dataset is not updated", step.name)
                summaries[step.name] = None
    return summaries
