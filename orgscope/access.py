"""What orgscope may read in each account: the access model (pure functions).

An account is in one of four states, shown the same way by ``check-config``, the ``accounts``
dataset, the Organization page and the ``account_unreachable`` alert (docs/iam.md, "Access
states"):

* ``unreachable``: the read role cannot be assumed (missing, wrong trust or ExternalId);
* ``no-read``: the role is assumed but every read it tried was refused (a role deployed with no
  policy, or an SCP that denies everything): nothing can be collected;
* ``partial``: readable with gaps: some actions are refused, and the collectors that need them
  fail (a role deployed before a collector that needs a new permission existed);
* ``readable``: every collector's reads went through.

A refused read is recognised by AWS's error code (:data:`ACCESS_DENIED_CODES`); the action is
taken from AWS's message ("... not authorized to perform: logs:FilterLogEvents ...") or, when
the message does not say, from the operation the collector declares among its IAM actions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

#: AWS error codes that mean "the read role may not do this".
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError",
     "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken"}
)

Access = Literal["readable", "partial", "no-read", "unreachable"]
#: Worst first: the order pages sort by and the headline counts in.
ACCESS_STATES: tuple[Access, ...] = ("unreachable", "no-read", "partial", "readable")
#: What each state means, for help text and the docs test.
ACCESS_MEANINGS: dict[str, str] = {
    "unreachable": "the read role cannot be assumed",
    "no-read": "the read role is assumed but every read was refused",
    "partial": "readable with gaps: some actions are refused",
    "readable": "every collector's reads went through",
}

#: The prefix the runner gives the error of a run skipped because AssumeRole failed.
UNREACHABLE_PREFIX = "account unreachable: "
#: The collector whose cycles decide each account's reachability (the registry's one
#: ``checks_reachability`` collector; tests/test_plugins.py holds the two equal): the alerts
#: read its runs to tell an unreachable account.
REACHABILITY_COLLECTOR = "inventory"
#: Collectors whose runs also count as cycles of reachability when they say something about
#: the role: an AssumeRole that failed, or reads that went through. With a change feed the
#: inventory runs hourly (docs/changes.md); the metrics collector's 5-minute runs keep an
#: unreachable account's alert as quick as before.
REACHABILITY_WITNESSES: tuple[str, ...] = ("metrics",)


def reachability_runs_sql(columns: str) -> str:
    """SELECT ``columns`` FROM runs of the cycles that decide reachability; its three
    parameters: the first date partition, and the earliest and latest ``started_at``."""
    witnesses = ", ".join(f"'{name}'" for name in REACHABILITY_WITNESSES)
    return (f"SELECT {columns} FROM runs WHERE date >= ? AND started_at >= ? "
            f"AND started_at <= ? AND (collector = '{REACHABILITY_COLLECTOR}' OR "
            f"(collector IN ({witnesses}) AND (starts_with(error, '{UNREACHABLE_PREFIX}') "
            "OR (status = 'ok' AND api_calls > 0))))")
#: How the reason of a no-read account begins (``accounts.reason``).
NO_READ_REASON = "the read role was assumed but every read was refused"

_CODE = re.compile(r"^([A-Za-z.]+) on ([A-Za-z0-9]+)")
_PERFORM = re.compile(r"perform: ([a-z0-9-]+:[A-Za-z0-9]+)")


@dataclass(frozen=True)
class Denial:
    """One refused action: which collector needed it, where, and AWS's code."""

    collector: str
    region: str
    action: str
    code: str
    #: The run's error as AWS worded it ("<Code> on <Operation>: <message>").
    error: str = ""

    def label(self) -> str:
        return f"{self.action} ({self.collector})"


def denied_code(error: Any) -> str | None:
    """The access-denied error code a run's ``error`` text starts with, else None.

    ``error``: a ``runs.error`` cell ("<Code> on <Operation>: <message>", as
    :func:`orgscope.aws.describe_error` writes it).
    """
    if not isinstance(error, str):
        return None
    found = _CODE.match(error)
    return found.group(1) if found and found.group(1) in ACCESS_DENIED_CODES else None


def denied_action(error: str, actions: Sequence[str] = ()) -> str:
    """The IAM action a refused call needed: named by AWS's message, else the declared action
    (of ``actions``, the collector's) whose name is the operation, else the operation."""
    said = _PERFORM.search(error)
    if said:
        return said.group(1)
    found = _CODE.match(error)
    operation = found.group(2) if found else "?"
    for action in actions:
        if action.split(":", 1)[-1] == operation:
            return action
    return operation


@dataclass(frozen=True)
class AccountAccess:
    """One account's access state, the refused actions and a one-line reason."""

    access: Access
    denials: tuple[Denial, ...]
    reason: str | None

    @property
    def reachable(self) -> bool:
        """Whether anything can be read (the ``accounts.reachable`` column)."""
        return self.access in ("readable", "partial")

    def denied_labels(self) -> list[str]:
        return sorted({d.label() for d in self.denials})


def _actions_text(denials: Iterable[Denial]) -> str:
    return ", ".join(sorted({d.label() for d in denials}))


def account_access(assume_error: str | None, runs: Iterable[Mapping[str, Any]],
                   actions: Mapping[str, Sequence[str]]) -> AccountAccess:
    """One account's state from its AssumeRole outcome and its latest runs.

    ``runs``: the latest run of each (collector, region) in the account, as mappings with
    collector, region, status, error and api_calls. ``actions``: each collector's declared
    IAM actions. A run that made no call (nothing to read) proves no access either way.
    """
    if assume_error:
        return AccountAccess("unreachable", (), assume_error)
    denials: list[Denial] = []
    read_ok = False
    for run in runs:
        error = run.get("error")
        if isinstance(error, str) and error.startswith(UNREACHABLE_PREFIX):
            return AccountAccess("unreachable", (), error[len(UNREACHABLE_PREFIX):])
        code = denied_code(error)
        calls = int(run.get("api_calls") or 0)
        if code is not None:
            collector = str(run.get("collector"))
            denials.append(Denial(collector, str(run.get("region")),
                                  denied_action(str(error), actions.get(collector, ())), code,
                                  str(error)))
            # a run refused at its second call or later read something first
            read_ok = read_ok or calls > 1
        elif run.get("status") == "ok" and calls > 0:
            read_ok = True
    if not denials:
        return AccountAccess("readable", (), None)
    if not read_ok:
        return AccountAccess("no-read", tuple(denials),
                             f"{NO_READ_REASON}: {_actions_text(denials)} "
                             f"(AWS: {denials[0].error})")
    return AccountAccess("partial", tuple(denials),
                         f"readable with gaps: refused {_actions_text(denials)}")


def access_table(accounts: pd.DataFrame, runs: pd.DataFrame,
                 actions: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Every account's access state from the latest ``accounts`` rows and latest runs.

    ``accounts``: account_id, reachable, reason (the ``accounts`` view), the authority on
    whether anything can be read: a reachable account is readable or partial (the runs name
    the refused actions), an unreachable one unreachable or no-read (by its reason), whatever
    older runs of a rarely running collector say. ``runs``: the latest run per (collector,
    account_id, region) with status, error, api_calls. Returns account_id, access, denied
    (list of "action (collector)"), reason.
    """
    by_account: dict[str, list[Mapping[str, Any]]] = {}
    if not runs.empty:
        for row in runs.to_dict("records"):
            by_account.setdefault(str(row["account_id"]), []).append(
                {str(k): v for k, v in row.items()})
    rows = []
    for row in accounts.to_dict("records"):
        account_id = str(row["account_id"])
        reason = row.get("reason") if isinstance(row.get("reason"), str) else None
        latest = [r for r in by_account.get(account_id, [])
                  if not str(r.get("error") or "").startswith(UNREACHABLE_PREFIX)]
        found = account_access(None, latest, actions)
        if bool(row.get("reachable")):
            access: Access = "partial" if found.denials else "readable"
            denied, why = found.denied_labels(), found.reason
        elif reason is not None and reason.startswith(NO_READ_REASON):
            access, denied, why = "no-read", found.denied_labels(), reason
        else:
            access, denied, why = "unreachable", [], reason
        rows.append({"account_id": account_id, "access": access, "denied": denied,
                     "reason": why})
    return pd.DataFrame(rows, columns=["account_id", "access", "denied", "reason"])
