"""The simulated organization's bill: 13 months of daily cost, known to the cent.

Pure and deterministic: a :class:`CostModel` is a function of the accounts, "today" and a seed.
Per account it has *lines* (an AWS service and usage type with a monthly amount); every day
each line costs ``monthly / 30.4375`` times a slow growth, a weekly shape (traffic-driven lines
only), seeded noise, and any spike or restatement on it. Part of each line carries the account's
Team tag, the rest none (``team_tag`` ""): log groups, NAT gateways and data transfer are often
left untagged, and some charges (Parameter Store API calls, Cost Explorer requests) cannot carry
a tag at all.

Amounts are :class:`~decimal.Decimal` with 6 places, as Cost Explorer returns strings; the
truth functions (:meth:`CostModel.totals`) add them exactly. Each record also has a usage
quantity, what Cost Explorer calls UsageQuantity: its amount over the AWS list price of the
line's usage unit (:data:`LIST_PRICES`), so a line's unit price is the list price.

The model plays what docs/cost.md calls out:

* the article's overhead categories, under AWS's own SERVICE and USAGE_TYPE names (us-east-1
  usage types of older services carry no region prefix, newer ones ``USE1-``): EventBridge
  custom events, cross-AZ data transfer, NAT gateways, CloudWatch Logs, Secrets Manager and
  Parameter Store API calls, with monthly totals near the article's ($13,955 in all), and
  orgscope's own Cost Explorer and GetMetricData requests;
* a team move: driver-app's Team tag changes from "driver" to "delivery" on the 15th of the
  month four months ago (:func:`default_team_move`);
* a cost spike: NAT gateway bytes in order-processing six times normal for three days, twelve
  days ago (:func:`default_spikes`); the scenario action ``cost_spike`` adds more;
* the last ``estimated_days`` days (3) are Estimated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd

from orgscope.config import AccountConfig
from orgscope.cost.review import add_months

DAYS_PER_MONTH = 30.4375
MICROS = 1_000_000
KEYS = ["day", "account_id", "team_tag", "service", "usage_type"]
Kind = Literal["fixed", "traffic"]

EC2 = "Amazon Elastic Compute Cloud - Compute"
EC2_OTHER = "EC2 - Other"
CLOUDWATCH = "AmazonCloudWatch"
EVENTBRIDGE = "CloudWatch Events"  # EventBridge's SERVICE name in Cost Explorer
SECRETS = "AWS Secrets Manager"
SSM = "AWS Systems Manager"
COST_EXPLORER = "AWS Cost Explorer"

#: The seed article's overhead categories -> (service, usage type) pairs in this model.
OVERHEAD_USAGE: dict[str, tuple[tuple[str, str], ...]] = {
    "EventBridge events": ((EVENTBRIDGE, "USE1-Event-64K-Chunks"),),
    "Cross-AZ data transfer": ((EC2_OTHER, "DataTransfer-Regional-Bytes"),),
    "NAT gateways": ((EC2_OTHER, "NatGateway-Hours"), (EC2_OTHER, "NatGateway-Bytes")),
    "CloudWatch Logs": ((CLOUDWATCH, "DataProcessing-Bytes"), (CLOUDWATCH, "TimedStorage-ByteHrs")),
    "Secrets Manager": ((SECRETS, "USE1-AWSSecretsManager-Secrets"),
                        (SECRETS, "USE1-AWSSecretsManager-APIRequest")),
    "Parameter Store API calls": ((SSM, "USE1-PS-APIInteractions"),),
}


#: AWS list prices (us-east-1, on-demand, first tier) of the model's usage types: (service,
#: usage type) -> (USD per unit, Cost Explorer's unit). Source: the services' pricing pages on
#: aws.amazon.com/<service>/pricing (EventBridge custom and cross-account events $1.00 per
#: million 64 KB chunks, SQS standard requests $0.40 per million, Lambda $0.20 per million
#: requests and $0.0000166667 per GB-second, NAT gateway $0.045 an hour and per GB processed).
LIST_PRICES: dict[tuple[str, str], tuple[float, str]] = {
    (EVENTBRIDGE, "USE1-Event-64K-Chunks"): (1.00e-6, "Events"),
    (EVENTBRIDGE, "USE1-Invocation-64K-Chunks"): (1.00e-6, "Events"),
    ("Amazon Simple Queue Service", "Requests-Tier1"): (0.40e-6, "Requests"),
    ("AWS Lambda", "Request"): (0.20e-6, "Requests"),
    ("AWS Lambda", "Lambda-GB-Second"): (0.0000166667, "Second"),
    ("Amazon API Gateway", "USE1-ApiGatewayRequest"): (3.50e-6, "Requests"),
    (EC2, "BoxUsage:m5.xlarge"): (0.192, "Hrs"),
    (EC2, "BoxUsage:t3.large"): (0.0832, "Hrs"),
    ("Amazon Relational Database Service", "InstanceUsage:db.r5.large"): (0.25, "Hrs"),
    ("Amazon ElastiCache", "NodeUsage:cache.r6g.large"): (0.206, "Hrs"),
    ("Amazon DynamoDB", "TimedStorage-ByteHrs"): (0.25, "GB-Mo"),
    ("Amazon Simple Storage Service", "TimedStorage-ByteHrs"): (0.023, "GB-Mo"),
    (EC2_OTHER, "EBS:VolumeUsage.gp3"): (0.08, "GB-Mo"),
    (EC2_OTHER, "DataTransfer-Regional-Bytes"): (0.01, "GB"),
    (EC2_OTHER, "NatGateway-Hours"): (0.045, "Hrs"),
    (EC2_OTHER, "NatGateway-Bytes"): (0.045, "GB"),
    (CLOUDWATCH, "DataProcessing-Bytes"): (0.50, "GB"),
    (CLOUDWATCH, "TimedStorage-ByteHrs"): (0.03, "GB-Mo"),
    (CLOUDWATCH, "CW:GMD-Metrics"): (0.01e-3, "Metrics"),
    (SECRETS, "USE1-AWSSecretsManager-Secrets"): (0.40, "Secrets"),
    (SECRETS, "USE1-AWSSecretsManager-APIRequest"): (0.05e-4, "Requests"),
    (SSM, "USE1-PS-APIInteractions"): (0.05e-4, "Requests"),
    ("AWS CloudTrail", "PaidEventsRecorded"): (2.00e-5, "Events"),
    (COST_EXPLORER, "USE1-APIRequest"): (0.01, "Requests"),
}
#: The price of a usage type the table does not list: one dollar per unit.
OTHER_PRICE = (1.0, "N/A")


def list_price(service: str, usage_type: str) -> tuple[float, str]:
    """(USD per unit, unit) of a line's usage (:data:`LIST_PRICES`)."""
    return LIST_PRICES.get((service, usage_type), OTHER_PRICE)


@dataclass(frozen=True)
class Line:
    """One (service, usage type) an account pays for, and the share that carries its tag."""

    service: str
    usage_type: str
    monthly_usd: float
    tagged: float
    kind: Kind

    @property
    def unit_price(self) -> float:
        """The list price of one unit of the line's usage (:func:`list_price`)."""
        return list_price(self.service, self.usage_type)[0]


@dataclass(frozen=True)
class TeamMove:
    """From ``on``, the account's resources carry Team = ``new_team`` instead of ``old_team``."""

    account_id: str
    old_team: str
    new_team: str
    on: date


@dataclass(frozen=True)
class CostSpike:
    """One line of one account costs ``factor`` times normal for ``days`` days from ``start``."""

    account_id: str
    service: str
    usage_type: str
    start: date
    days: int
    factor: float

    def covers(self, day: date) -> bool:
        return self.start <= day < self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class Restatement:
    """AWS corrects one line of one account on one day: its amount times ``factor``."""

    day: date
    account_id: str
    service: str
    usage_type: str
    factor: float


@dataclass(frozen=True)
class CostRecord:
    """What Cost Explorer knows about one (day, account, tag value, service, usage type)."""

    day: date
    account_id: str
    team_tag: str
    service: str
    usage_type: str
    micros: int  # millionths of a dollar
    quantity: float = 0.0  # units of the usage type (UsageQuantity): amount / list price

    @property
    def amount(self) -> Decimal:
        return as_usd(self.micros)


def as_usd(micros: int) -> Decimal:
    """Millionths of a dollar -> dollars, exactly (Cost Explorer's amounts are decimal text)."""
    return Decimal(micros).scaleb(-6)


# --- the reference organization's lines ------------------------------------------------------

#: Monthly cost of each account before the overhead categories (USD), by config account name.
BASE_MONTHLY: dict[str, float] = {
    "customer-web": 10_200, "mobile-apps": 7_000, "partner-portal": 1_800,
    "driver-app": 2_900, "merchant-dashboard": 1_600, "inventory-mgmt": 3_500,
    "order-processing": 13_300, "delivery-orchestration": 6_600, "payment-service": 4_800,
    "identity-service": 3_900, "event-bus": 300, "monitoring": 900, "org-management": 150,
}
#: How a workload account's base cost splits over services (shares add up to 1).
BASE_MIX: tuple[tuple[str, str, float, float, Kind], ...] = (
    (EC2, "BoxUsage:m5.xlarge", 0.30, 0.95, "fixed"),
    ("Amazon Relational Database Service", "InstanceUsage:db.r5.large", 0.20, 0.95, "fixed"),
    ("Amazon ElastiCache", "NodeUsage:cache.r6g.large", 0.08, 0.95, "fixed"),
    ("AWS Lambda", "Lambda-GB-Second", 0.12, 0.9, "traffic"),
    ("Amazon API Gateway", "USE1-ApiGatewayRequest", 0.08, 0.9, "traffic"),
    ("Amazon DynamoDB", "TimedStorage-ByteHrs", 0.05, 0.9, "fixed"),
    ("Amazon Simple Queue Service", "Requests-Tier1", 0.05, 0.9, "traffic"),
    ("Amazon Simple Storage Service", "TimedStorage-ByteHrs", 0.07, 0.8, "fixed"),
    (EC2_OTHER, "EBS:VolumeUsage.gp3", 0.05, 0.9, "fixed"),
)
#: The nine team accounts of the article's "NAT Gateway (9 accounts)".
TEAM_ACCOUNTS = ("customer-web", "mobile-apps", "partner-portal", "driver-app",
                 "merchant-dashboard", "inventory-mgmt", "order-processing",
                 "delivery-orchestration", "payment-service")
#: EventBridge custom events, by publishing account (USD a month).
EVENTBRIDGE_MONTHLY = {"event-bus": 2_050, "customer-web": 800, "payment-service": 400,
                       "mobile-apps": 200}
CROSS_AZ_MONTHLY = 2_100.0
NAT_MONTHLY = 3_215.0
NAT_HOURS_MONTHLY = 98.55  # three NAT gateways x $0.045 x 730 h
LOGS_MONTHLY = 4_500.0
LOGS_MONITORING = 900.0
SECRETS_MONTHLY = 1_800.0
SECRETS_IDENTITY = 500.0
PARAMETER_STORE_MONTHLY = 890.0
COST_EXPLORER_MONTHLY = 25.0  # orgscope's own GetCostAndUsage requests
GET_METRIC_DATA_MONTHLY = 40.0  # orgscope's own GetMetricData metrics


def _weights(names: Iterable[str]) -> dict[str, float]:
    names = [n for n in names if n in BASE_MONTHLY]
    total = sum(BASE_MONTHLY[n] for n in names)
    return {n: BASE_MONTHLY[n] / total for n in names}


def account_lines(name: str) -> list[Line]:
    """The lines of the reference account called ``name`` (config.toml ``name``); an unknown
    account gets a small workload."""
    base = BASE_MONTHLY.get(name, 500.0)
    workload = name not in ("event-bus", "monitoring", "org-management")
    lines: list[Line] = []
    if workload:
        lines += [Line(s, u, base * share, tagged, kind) for s, u, share, tagged, kind in BASE_MIX]
    elif name == "event-bus":
        lines.append(Line("AWS Lambda", "Lambda-GB-Second", base, 0.9, "traffic"))
    elif name == "monitoring":
        lines.append(Line(EC2, "BoxUsage:t3.large", base * 0.6, 1.0, "fixed"))
        lines.append(Line("Amazon Simple Storage Service", "TimedStorage-ByteHrs", base * 0.4,
                          1.0, "fixed"))
        lines.append(Line(CLOUDWATCH, "CW:GMD-Metrics", GET_METRIC_DATA_MONTHLY, 0.0, "traffic"))
    else:
        lines.append(Line("AWS CloudTrail", "PaidEventsRecorded", base, 1.0, "traffic"))
        lines.append(Line(COST_EXPLORER, "USE1-APIRequest", COST_EXPLORER_MONTHLY, 0.0,
                          "traffic"))
    if name in EVENTBRIDGE_MONTHLY:
        lines.append(Line(EVENTBRIDGE, "USE1-Event-64K-Chunks", EVENTBRIDGE_MONTHLY[name], 0.9,
                          "traffic"))
    teams = _weights(TEAM_ACCOUNTS)
    if name in teams:
        lines.append(Line(EC2_OTHER, "DataTransfer-Regional-Bytes",
                          CROSS_AZ_MONTHLY * teams[name], 0.6, "traffic"))
        nat = NAT_MONTHLY / len(TEAM_ACCOUNTS)
        lines.append(Line(EC2_OTHER, "NatGateway-Hours", NAT_HOURS_MONTHLY, 0.7, "fixed"))
        lines.append(Line(EC2_OTHER, "NatGateway-Bytes", nat - NAT_HOURS_MONTHLY, 0.7, "traffic"))
        secrets = (SECRETS_MONTHLY - SECRETS_IDENTITY) / len(TEAM_ACCOUNTS)
        lines.append(Line(SECRETS, "USE1-AWSSecretsManager-Secrets", secrets * 0.7, 0.85,
                          "fixed"))
        lines.append(Line(SECRETS, "USE1-AWSSecretsManager-APIRequest", secrets * 0.3, 0.85,
                          "traffic"))
        lines.append(Line(SSM, "USE1-PS-APIInteractions", PARAMETER_STORE_MONTHLY * teams[name],
                          0.0, "traffic"))
    if name == "identity-service":
        lines.append(Line(SECRETS, "USE1-AWSSecretsManager-Secrets", SECRETS_IDENTITY * 0.7,
                          0.85, "fixed"))
        lines.append(Line(SECRETS, "USE1-AWSSecretsManager-APIRequest", SECRETS_IDENTITY * 0.3,
                          0.85, "traffic"))
    logs = LOGS_MONITORING if name == "monitoring" else \
        (LOGS_MONTHLY - LOGS_MONITORING) * _weights(
            n for n in BASE_MONTHLY if n != "monitoring").get(name, 0.0)
    if logs:
        lines.append(Line(CLOUDWATCH, "DataProcessing-Bytes", logs * 0.8, 0.5, "traffic"))
        lines.append(Line(CLOUDWATCH, "TimedStorage-ByteHrs", logs * 0.2, 0.5, "fixed"))
    return lines


# --- time helpers ----------------------------------------------------------------------------


def month_start(day: date, months: int = 0) -> date:
    """The first day of the month ``months`` after ``day``'s (negative: before)."""
    return add_months(day, months)


def default_team_move(today: date) -> TeamMove:
    """driver-app moves from team "driver" to "delivery" on the 15th, four months ago."""
    return TeamMove("444444444444", "driver", "delivery", month_start(today, -4).replace(day=15))


def configured_team_move(accounts: Sequence[AccountConfig]) -> TeamMove | None:
    """The first account's latest move in config (``team_history``): the simulated tags
    follow the organization the config describes."""
    for account in accounts:
        if account.team_history:
            last = account.team_history[-1]
            return TeamMove(account.id, last.team, account.team, last.until)
    return None


def default_spikes(today: date) -> tuple[CostSpike, ...]:
    """order-processing's NAT gateway bytes at six times normal for three days, from twelve
    days ago (a retry storm through the NAT)."""
    return (CostSpike("777777777777", EC2_OTHER, "NatGateway-Bytes",
                      today - timedelta(days=12), 3, 6.0),)


#: Noise is drawn per line for every day since this date, so a day's amount does not depend
#: on which day is "today".
NOISE_EPOCH = date(2020, 1, 1)


def _noise(seed: int, account_id: str, line: Line, offsets: np.ndarray) -> np.ndarray:
    """Standard normal draws for the days ``offsets`` after :data:`NOISE_EPOCH`, stable
    across processes and runs."""
    digest = hashlib.blake2b(f"{seed}|{account_id}|{line.service}|{line.usage_type}".encode(),
                             digest_size=8).digest()
    generator = np.random.default_rng(int.from_bytes(digest, "big"))
    draws = generator.standard_normal(int(offsets.max()) + 1 if len(offsets) else 0)
    noise: np.ndarray = draws[offsets]
    return noise


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    """Per-day arrays shared by every line: growth, weekly shape, noise offsets."""

    growth: np.ndarray
    weekly: np.ndarray
    offsets: np.ndarray


@dataclass(frozen=True)
class CostModel:
    """The organization's daily cost from ``months`` calendar months ago through ``today``."""

    accounts: tuple[AccountConfig, ...]
    today: date
    seed: int = 7
    months: int = 13
    move: TeamMove | None = None
    spikes: tuple[CostSpike, ...] = ()
    restatements: tuple[Restatement, ...] = ()
    estimated_days: int = 3
    growth_per_month: float = 0.01

    @classmethod
    def reference(cls, accounts: Sequence[AccountConfig], today: date, seed: int = 7,
                  spikes: Sequence[CostSpike] | None = None,
                  restatements: Sequence[Restatement] = ()) -> CostModel:
        """The reference model: the team move config.toml records (``team_history``), else the
        default one, and the default spike (unless ``spikes`` given)."""
        move = configured_team_move(accounts) or default_team_move(today)
        return cls(tuple(accounts), today, seed, move=move,
                   spikes=tuple(default_spikes(today) if spikes is None else spikes),
                   restatements=tuple(restatements))

    @property
    def start(self) -> date:
        return month_start(self.today, -(self.months - 1))

    def days(self) -> list[date]:
        count = (self.today - self.start).days + 1
        return [self.start + timedelta(days=i) for i in range(count)]

    def estimated(self, day: date) -> bool:
        """Cost Explorer marks the newest days Estimated until AWS has all their usage."""
        return day > self.today - timedelta(days=self.estimated_days)

    def team_tag(self, account: AccountConfig, day: date) -> str:
        move = self.move
        if move and move.account_id == account.id and \
                account.team in (move.old_team, move.new_team):
            return move.new_team if day >= move.on else move.old_team
        return account.team

    def _factors(self, account: AccountConfig, line: Line, days: Sequence[date],
                 calendar: _Calendar) -> np.ndarray:
        """The line's daily multiplier: growth, weekly shape, noise, spikes, restatements."""
        factors: np.ndarray = calendar.growth.copy()
        sigma = 0.01
        if line.kind == "traffic":
            factors *= calendar.weekly
            sigma = 0.06
        factors *= np.exp(sigma * _noise(self.seed, account.id, line, calendar.offsets))
        key = (account.id, line.service, line.usage_type)
        for spike in self.spikes:
            if (spike.account_id, spike.service, spike.usage_type) == key:
                factors *= np.array([spike.factor if spike.covers(d) else 1.0 for d in days])
        for restated in self.restatements:
            if (restated.account_id, restated.service, restated.usage_type) == key and \
                    days[0] <= restated.day <= days[-1]:
                factors[(restated.day - days[0]).days] *= restated.factor
        return factors

    @cached_property
    def frame(self) -> pd.DataFrame:
        """Every non-zero record: day (date), month ("YYYY-MM"), account_id, team_tag,
        service, usage_type, micros (int64 millionths of a dollar), quantity (float, units
        of the usage type: the record's amount over the line's list price), sorted by the
        keys."""
        columns: dict[str, list[np.ndarray]] = {k: [] for k in (*KEYS, "micros", "quantity")}
        days = self.days()
        day_array = np.array(days, dtype=object)
        first = days[0]
        calendar = _Calendar(
            growth=(1 + self.growth_per_month) ** (
                np.array([(d - first).days for d in days]) / DAYS_PER_MONTH),
            weekly=np.array([0.85 if d.weekday() >= 5 else 1.06 for d in days]),
            offsets=np.array([(d - NOISE_EPOCH).days for d in days]))
        for account in self.accounts:
            tags = np.array([self.team_tag(account, day) for day in days], dtype=object)
            untagged = np.full(len(days), "", dtype=object)
            for line in account_lines(account.name):
                factors = self._factors(account, line, days, calendar)
                amounts = line.monthly_usd / DAYS_PER_MONTH * factors
                for share, values in ((line.tagged, tags), (1 - line.tagged, untagged)):
                    columns["day"].append(day_array)
                    columns["account_id"].append(np.full(len(days), account.id, dtype=object))
                    columns["team_tag"].append(values)
                    columns["service"].append(np.full(len(days), line.service, dtype=object))
                    columns["usage_type"].append(
                        np.full(len(days), line.usage_type, dtype=object))
                    micros = np.rint(amounts * share * MICROS).astype(np.int64)
                    columns["micros"].append(micros)
                    columns["quantity"].append(micros / MICROS / line.unit_price)
        frame = pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})
        frame = frame[frame["micros"] != 0]
        months = {day: day.strftime("%Y-%m") for day in days}
        frame.insert(1, "month", frame["day"].map(months))
        return frame.sort_values(KEYS, kind="stable").reset_index(drop=True)

    def records(self) -> list[CostRecord]:
        """:attr:`frame` as records."""
        return [CostRecord(*row) for row in self.frame[[*KEYS, "micros", "quantity"]].itertuples(
            index=False)]

    def totals(self, keys: Sequence[str], start: date | None = None,
               end: date | None = None) -> dict[tuple[Any, ...], Decimal]:
        """Exact sums over [start, end) grouped by ``keys``: any of "month" ("YYYY-MM"),
        "day" (a date), "account_id", "team_tag", "service", "usage_type"."""
        frame = self.frame
        if start is not None:
            frame = frame[frame["day"] >= start]
        if end is not None:
            frame = frame[frame["day"] < end]
        if not keys:
            return {(): as_usd(int(frame["micros"].sum()))}
        sums = frame.groupby(list(keys), sort=True)["micros"].sum()
        return {(key if isinstance(key, tuple) else (key,)): as_usd(int(micros))
                for key, micros in sums.items()}

    def total(self, start: date | None = None, end: date | None = None) -> Decimal:
        return self.totals((), start, end)[()]


def team_daily(model: CostModel, platform_team: str) -> pd.DataFrame:
    """The model's cost per day, account and team as orgscope attributes it with the
    reference config's rules (the Team tag, else the account's team that day; shared accounts
    all to ``platform_team``): date, account_id, team, amount (dollars). What the forecast is
    judged against in tests and bench/forecast_backtest.py."""
    accounts = {a.id: a for a in model.accounts}
    frame = model.frame
    teams = [platform_team if accounts[a].shared else (tag or accounts[a].team_on(day))
             for a, tag, day in zip(frame["account_id"], frame["team_tag"], frame["day"],
                                    strict=True)]
    daily = pd.DataFrame({"date": frame["day"], "account_id": frame["account_id"],
                          "team": teams, "amount": frame["micros"] / MICROS})
    summed: pd.DataFrame = daily.groupby(["date", "account_id", "team"], as_index=False).agg(
        amount=("amount", "sum"))
    return summed
