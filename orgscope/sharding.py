"""Account shards: split collection over N processes or machines with no coordination.

Shard K of N (``"K/N"``, 1 <= K <= N) owns the accounts whose id hashes to K: the first 8
bytes of SHA-256 of the 12-digit id, modulo N, plus one. The hash is stable across processes,
machines and Python versions (unlike ``hash()``), so every process given the same N agrees on
the partition without talking to the others: each account belongs to exactly one shard, and
the union of the shards is the whole organization. Growing N moves about (N-1)/N of the
accounts; their watermarks are in the store, so the new owner resumes where the old one
stopped.

A payer collector (Cost Explorer) runs in the shard that owns the management account.
Org-wide work after collection (health, traces, heal, alerts, compaction) runs where
:func:`runs_org_steps` says: by default on shard 1 only (docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 1000

#: Where org-wide steps run: "auto" on shard 1 (or unsharded), "run" always, "skip" never.
StepsMode = Literal["auto", "run", "skip"]


class HasId(Protocol):
    @property
    def id(self) -> str: ...


A = TypeVar("A", bound=HasId)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (both 1-based)."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: must be K/N with "
                             f"1 <= K <= N <= {MAX_SHARDS}, such as 1/1 or 2/4")

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, account_id: str) -> bool:
        return shard_of(account_id, self.count) == self.index

    def select(self, accounts: Iterable[A]) -> list[A]:
        """The accounts this shard collects, in their given order."""
        return [account for account in accounts if self.owns(account.id)]


ALL = Shard(1, 1)


def shard_of(account_id: str, count: int) -> int:
    """The 1-based shard of ``account_id`` among ``count`` shards (stable everywhere)."""
    digest = hashlib.sha256(account_id.strip().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str) -> Shard:
    """'2/4' -> Shard(2, 4); ValueError with what is allowed for anything else."""
    match = _SHARD_RE.match(text or "")
    if not match:
        raise ValueError(f"shard {text!r}: must be K/N such as 1/1 or 2/4 (this process "
                         "collects the K-th of N account shards)")
    return Shard(int(match.group(1)), int(match.group(2)))


def partition(account_ids: Sequence[str], count: int) -> dict[int, list[str]]:
    """Every shard's accounts: {1: [...], ..., count: [...]} (a shard may be empty)."""
    shards: dict[int, list[str]] = {k: [] for k in range(1, count + 1)}
    for account_id in account_ids:
        shards[shard_of(account_id, count)].append(account_id)
    return shards


def runs_org_steps(shard: Shard, mode: StepsMode) -> bool:
    """Whether this process runs the org-wide steps after its collection."""
    if mode == "run":
        return True
    if mode == "skip":
        return False
    return shard.index == 1
