"""config.toml -> typed, validated settings.

The file is parsed with :mod:`tomllib` into pydantic models that forbid unknown keys. A user
mistake never surfaces as a traceback: :func:`load_config` raises :class:`ConfigError` whose
``lines`` each name the file, the key, the value found and what is allowed, and the CLI prints
them and exits with status 2.

Secrets never live in this file: it names the environment variables (or Secrets Manager ids)
that hold them.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from orgscope.pricing import Pricing
from orgscope.sharding import StepsMode, parse_shard
from orgscope.untrusted import visible

ACCOUNT_ID_RE = re.compile(r"^\d{12}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
ENV_VAR_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
INTERVAL_RE = re.compile(r"^([0-9]+)\s*([smhd])$")
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = timedelta(seconds=30)
MAX_INTERVAL = timedelta(days=1)


class ConfigError(Exception):
    """A config file that cannot be used; ``lines`` holds one human line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


# --- field types with their own "what is allowed" wording -----------------------------------


def _account_id(value: str) -> str:
    if not ACCOUNT_ID_RE.match(value):
        raise ValueError("must be a 12-digit AWS account id, quoted, e.g. '111111111111'")
    return value


def _region(value: str) -> str:
    if not REGION_RE.match(value):
        raise ValueError("must be an AWS region name such as 'us-east-1' or 'eu-west-1'")
    return value


def _env_var_name(value: str) -> str:
    if not ENV_VAR_RE.match(value):
        raise ValueError(
            "must be the NAME of an environment variable (capitals, digits, underscores), "
            "never the secret itself"
        )
    return value


#: More digits than any allowed duration has (455 days is 39,312,000 seconds): a longer number
#: is out of range without being turned into a timedelta (which overflows past 999,999,999 days).
MAX_DURATION_DIGITS = 9


def _duration(value: Any, example: str, *, low: timedelta, high: timedelta,
              low_text: str, high_text: str) -> timedelta:
    """A duration string ('30s', '5m', '1h', '1d') between ``low`` and ``high``; ValueError
    saying what is allowed otherwise (``example`` shows the form)."""
    if isinstance(value, timedelta):
        return value
    match = INTERVAL_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"must be a duration string such as {example}")
    digits = match.group(1).lstrip("0") or "0"
    if len(digits) > MAX_DURATION_DIGITS:
        raise ValueError(f"must be between {low_text!r} and {high_text!r}")
    duration = timedelta(seconds=int(digits) * INTERVAL_UNITS[match.group(2)])
    if not low <= duration <= high:
        raise ValueError(f"must be between {low_text!r} and {high_text!r}")
    return duration


def parse_interval(value: Any) -> timedelta:
    """'30s', '5m', '1h', '1d' -> timedelta, between 30 seconds and 1 day."""
    return _duration(value, "'30s', '5m', '1h' or '1d'", low=MIN_INTERVAL, high=MAX_INTERVAL,
                     low_text="30s", high_text="1d")


def parse_duration(value: Any) -> timedelta:
    """Like :func:`parse_interval`, for spans of history: from '1m' up to '455d'."""
    return _duration(value, "'10m', '6h' or '14d'", low=timedelta(minutes=1),
                     high=timedelta(days=455), low_text="1m", high_text="455d")


def format_interval(interval: timedelta) -> str:
    """The inverse of :func:`parse_interval`, in the largest whole unit."""
    seconds = int(interval.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


AccountId = Annotated[str, AfterValidator(_account_id)]
Region = Annotated[str, AfterValidator(_region)]
EnvVarName = Annotated[str, AfterValidator(_env_var_name)]
Interval = Annotated[timedelta, BeforeValidator(parse_interval)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sections --------------------------------------------------------------------------------


def _shard(value: str) -> str:
    return parse_shard(value).label


ShardText = Annotated[str, AfterValidator(_shard)]


class OrganizationConfig(_Strict):
    name: str = Field(min_length=1)
    discovery: Literal["config", "organizations"] = "config"
    management_account_id: AccountId
    monitoring_account_id: AccountId
    central_bus_account_id: AccountId
    central_bus_name: str = Field(default="central-bus", min_length=1)
    #: This process collects account shard K of N ("1/1": every account); `--shard`
    #: overrides it (docs/scaling.md).
    shard: ShardText = "1/1"
    #: Where org-wide steps (health, traces, heal, alerts) and compaction run: "auto" (shard 1
    #: only), "run" or "skip"; `--steps` overrides it.
    org_steps: StepsMode = "auto"


class TeamPeriod(_Strict):
    """A team an account belonged to before its current one, up to (not including) ``until``."""

    team: str = Field(min_length=1)
    until: date


class AccountConfig(_Strict):
    id: AccountId
    name: str = Field(min_length=1)
    team: str = Field(min_length=1)
    environment: str = "production"
    cost_center: str = ""
    shared: bool = False
    #: Earlier owners, oldest first: cost attribution is effective-dated (docs/cost.md), so a
    #: move between teams does not rewrite past months. ``team`` is the owner from the last
    #: ``until`` on.
    team_history: list[TeamPeriod] = Field(default_factory=list)

    @model_validator(mode="after")
    def _history_in_order(self) -> AccountConfig:
        untils = [period.until for period in self.team_history]
        if any(later <= earlier for earlier, later in pairwise(untils)):
            raise ValueError("team_history: list the periods oldest first, each 'until' "
                             "after the previous one")
        return self

    def team_on(self, day: date) -> str:
        """The team that owned the account on ``day``."""
        for period in self.team_history:
            if day < period.until:
                return period.team
        return self.team


class AwsConfig(_Strict):
    regions: list[Region] = Field(min_length=1)
    endpoint_url: str = ""
    read_role_name: str = Field(default="OrgScopeReadOnly", min_length=1)
    external_id_env: EnvVarName = "ORGSCOPE_EXTERNAL_ID"
    session_name: str = Field(default="orgscope", pattern=r"^[\w+=,.@-]{2,64}$")
    session_duration_s: int = Field(default=3600, ge=900, le=43200)
    max_workers: int = Field(default=8, ge=1, le=64)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    read_timeout_s: float = Field(default=30.0, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=10)

    @model_validator(mode="after")
    def _unique_regions(self) -> AwsConfig:
        if len(set(self.regions)) != len(self.regions):
            raise ValueError("regions must not repeat a region")
        return self


class CollectorConfig(_Strict):
    """What every collector's section holds; a collector with more settings declares a
    subclass as its ``Collector.settings`` (orgscope/collect.py)."""

    enabled: bool = True
    interval: Interval = timedelta(minutes=5)
    jitter_s: int = Field(default=10, ge=0, le=600)

    def pricing(self) -> Pricing:
        """How a run's billed usage follows the interval (:mod:`orgscope.bill`): the same
        whatever the interval, unless a collector's settings model says otherwise."""
        return Pricing()

    def run_interval(self, change_feed: bool) -> timedelta:
        """How often the collector runs: ``interval``, unless a change feed (``[changes]
        queue_url``) makes it a reconciliation with an interval of its own."""
        del change_feed
        return self.interval


class CollectorSections(_Strict):
    """``[collectors.NAME]``: one section per registered collector. The fields are the
    collectors' own settings models, added from the registry by
    :func:`orgscope.plugins.config_model`; this base has none."""


SettingT = TypeVar("SettingT")
SettingsT = TypeVar("SettingsT", bound=CollectorConfig)


class TracesConfig(_Strict):
    """The ``traces`` step (docs/traces.md): how much recent history it stitches again."""

    window: Duration = timedelta(minutes=15)
    max_duration: Duration = timedelta(minutes=5)


def _otlp_endpoint(value: str) -> str:
    if value and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError("must be empty or an http(s) URL such as 'http://localhost:4318'")
    return value.rstrip("/")


class ExportConfig(_Strict):
    """OTLP export of stitched traces and collection spans (docs/traces.md, "Export")."""

    otlp_endpoint: Annotated[str, AfterValidator(_otlp_endpoint)] = ""
    traces: bool = True
    collection: bool = True
    settle: Duration = timedelta(minutes=2)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class HealthConfig(_Strict):
    """Thresholds of the event-flow health model (docs/health.md explains each verdict)."""

    window: Duration = timedelta(minutes=15)
    silent_ratio: Share = 0.1
    min_expected_events: float = Field(default=5.0, ge=0)
    failed_invocations: int = Field(default=1, ge=1)
    dlq_growth: int = Field(default=1, ge=1)
    throttled: int = Field(default=1, ge=1)
    retry_ratio: Share = 0.2
    latency_factor: float = Field(default=2.0, ge=1.0)
    baseline_weeks: int = Field(default=4, ge=1, le=12)
    min_history: Duration = timedelta(days=7)
    stale_after: Duration = timedelta(minutes=20)


Money = Annotated[float, Field(ge=0.0)]


class CostConfig(_Strict):
    """Per-team cost: attribution, shared accounts, budgets, anomalies (docs/cost.md)."""

    shared_allocation: Literal["platform", "even", "events"] = "platform"
    platform_team: str = Field(default="platform", min_length=1)
    untagged: Literal["account", "separate"] = "account"
    budgets: dict[str, Money] = Field(default_factory=dict)
    anomaly_window_days: int = Field(default=28, ge=7, le=90)
    anomaly_z: float = Field(default=4.0, gt=0)
    anomaly_min_usd: Money = 20.0


class StoreConfig(_Strict):
    path: str = Field(default="./data", min_length=1)


Severity = Literal["info", "warning", "critical"]


def _secret_id(value: str) -> str:
    if value and not re.match(r"^[A-Za-z0-9/_+=.@:-]{1,2048}$", value):
        raise ValueError("must be a Secrets Manager secret name or ARN such as "
                         "'orgscope/slack/payments' (letters, digits, /_+=.@-)")
    return value


SecretId = Annotated[str, AfterValidator(_secret_id)]


class SlackRoute(_Strict):
    """Where alerts of a team and severity go: a webhook named by an environment variable or
    read from Secrets Manager (exactly one of the two)."""

    team: str = "*"
    severity: Literal["*", "info", "warning", "critical"] = "*"
    webhook_env: EnvVarName | None = None
    webhook_secret: SecretId = ""

    @model_validator(mode="after")
    def _one_webhook(self) -> SlackRoute:
        if (self.webhook_env is None) == (not self.webhook_secret):
            raise ValueError("give exactly one of webhook_env (an environment variable's "
                             "name) and webhook_secret (a Secrets Manager secret id)")
        return self


class SlackConfig(_Strict):
    """Slack delivery (docs/alerts.md): routes, where webhooks come from, and retries."""

    default_webhook_env: EnvVarName = "ORGSCOPE_SLACK_WEBHOOK"
    #: When set, the default webhook is read from this Secrets Manager secret instead.
    default_webhook_secret: SecretId = ""
    routes: list[SlackRoute] = Field(default_factory=list)
    #: Where webhook secrets are read (default: the monitoring account, the first region).
    secrets_account_id: AccountId | None = None
    secrets_region: Region | None = None
    secret_cache_ttl: Duration = timedelta(hours=1)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_s: float = Field(default=2.0, gt=0, le=600)
    max_backoff_s: float = Field(default=300.0, gt=0, le=86400)
    drain_wait_s: float = Field(default=30.0, ge=0, le=600)
    #: The outbox folder; "" = ``_outbox`` in a local store (beside the config for S3).
    outbox_path: str = ""


def parse_for(value: Any) -> timedelta:
    """An alert rule's ``for``: '0s' (at once) up to '1d'."""
    return _duration(value, "'0s', '5m' or '1h'", low=timedelta(0), high=MAX_INTERVAL,
                     low_text="0s", high_text="1d")


ForDuration = Annotated[timedelta, BeforeValidator(parse_for)]


class AlertRuleConfig(_Strict):
    """One alert rule: on or off, its severity, and ``for``, how long its condition must hold
    before it fires (until then the alert is pending)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = True
    severity: Severity = "warning"
    for_: ForDuration = Field(default=timedelta(0), alias="for")


class AlertRuleSections(_Strict):
    """``[alerts.rules.NAME]``: one section per alert rule. The fields are the rules' own
    settings models, added from alerts/rules.py by :func:`orgscope.plugins.config_model`;
    this base has none."""


#: Labels silences may match (orgscope.datasets.LABELS plus the alert key).
SILENCE_LABELS: tuple[str, ...] = ("key", "alert_name", "severity", "account_id",
                                   "account_name", "region", "team", "bus", "rule", "service")


class SilenceConfig(_Strict):
    """A silence written in config.toml: every matcher must match ({label: pattern})."""

    matchers: dict[str, str] = Field(min_length=1)
    ends_at: datetime
    starts_at: datetime | None = None
    comment: str = Field(min_length=1)

    @model_validator(mode="after")
    def _known_labels(self) -> SilenceConfig:
        unknown = sorted(set(self.matchers) - set(SILENCE_LABELS))
        if unknown:
            raise ValueError(f"matchers: unknown label(s) {', '.join(unknown)} (allowed: "
                             f"{', '.join(SILENCE_LABELS)})")
        if all(set(p.strip()) <= {"*"} for p in self.matchers.values()):
            raise ValueError("matchers: name at least one value that is not '*' (a silence "
                             "must not silence everything)")
        return self


class AlertsConfig(_Strict):
    unreachable_intervals: int = Field(default=3, ge=1, le=100)
    dlq_depth: int = Field(default=1, ge=1)
    repeat_interval: Interval = timedelta(hours=4)
    #: This many messages or more for one account and channel in one evaluation go as one.
    group_threshold: int = Field(default=3, ge=2, le=1000)
    group_lines: int = Field(default=10, ge=1, le=50)
    silences: list[SilenceConfig] = Field(default_factory=list)
    rules: AlertRuleSections = AlertRuleSections()

    def rule(self, name: str) -> AlertRuleConfig:
        """One alert rule's settings (its own model; the common defaults for a name no rule
        has)."""
        settings: AlertRuleConfig | None = getattr(self.rules, name, None)
        return settings or AlertRuleConfig()


def exclude_rule_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable ``heal.exclude_rules`` entry (None when it is)."""
    if not pattern.strip():
        return "must not be empty"
    if "/" in pattern and pattern.count("/") < 3:
        return ("must be a rule name (glob) such as 'orders-*', or "
                "'account_id/region/bus/rule' (each part a glob) such as "
                "'111111111111/us-east-1/default/orders-*'")
    return None


def _exclude_rule(value: str) -> str:
    error = exclude_rule_error(value)
    if error:
        raise ValueError(error)
    return value


#: An SQS queue URL: https://sqs.<region>.amazonaws.com/<account>/<name> (or the simulator's
#: http://host:port/<account>/<name>).
QUEUE_URL_RE = re.compile(r"^https?://[^/\s]+/(\d{12})/([\w-]{1,80}(\.fifo)?)$")


def _queue_url(value: str) -> str:
    if value and not QUEUE_URL_RE.match(value):
        raise ValueError("must be an SQS queue URL such as "
                         "'https://sqs.us-east-1.amazonaws.com/131313131313/orgscope-changes' "
                         "(the QueueUrl output of orgscope-change-queue.yaml), or empty for off")
    return value


class ChangesConfig(_Strict):
    """Change events (docs/changes.md): the monitoring account's queue `orgscope serve`
    long-polls for rule and bus changes. Empty ``queue_url``: off."""

    queue_url: Annotated[str, AfterValidator(_queue_url)] = ""
    #: The queue's region; empty: read from the URL (``sqs.<region>.``), else aws.regions[0].
    region: Annotated[str, AfterValidator(lambda v: _region(v) if v else v)] = ""
    #: How long one ReceiveMessage waits for a message (SQS long polling: 1-20 s).
    wait_s: int = Field(default=20, ge=1, le=20)

    def queue_region(self, default: str) -> str:
        """The queue's region: ``region``, else the URL's ``sqs.<region>.`` host, else
        ``default``."""
        if self.region:
            return self.region
        match = re.match(r"^https?://sqs\.([a-z0-9-]+)\.", self.queue_url)
        return match.group(1) if match else default


def _principal_pattern(value: str) -> str:
    """An ARN glob of ``[heal] ignore_principals``: 'arn:aws:sts::*:assumed-role/deploy/*'."""
    if not value.startswith("arn:"):
        raise ValueError("must be an ARN pattern starting with 'arn:' (* and ? match any "
                         "characters), e.g. 'arn:aws:sts::*:assumed-role/deploy-pipeline/*'")
    return value


class HealConfig(_Strict):
    """Auto-heal of disabled rules (docs/heal.md): switch, role, opt-outs and limits."""

    enabled: bool = False
    dry_run: bool = True
    role_name: str = Field(default="OrgScopeAutoHeal", min_length=1)
    external_id_env: EnvVarName = "ORGSCOPE_HEAL_EXTERNAL_ID"
    opt_out_tag: str = Field(default="orgscope:autoheal", min_length=1)
    #: Rule-name globs ('orders-*') or 'account_id/region/bus/rule' globs.
    exclude_rules: list[Annotated[str, AfterValidator(_exclude_rule)]] = Field(
        default_factory=list)
    #: Principal ARN globs (a deployment pipeline's role): a rule whose last change event
    #: (``rule_changes``) was made by one of them is left alone, the reason in the heal log.
    ignore_principals: list[Annotated[str, AfterValidator(_principal_pattern)]] = Field(
        default_factory=list)
    max_per_run: int = Field(default=5, ge=0, le=100)
    max_per_hour: int = Field(default=20, ge=0, le=1000)
    maintenance_disabled_share: Share = 0.3


#: One DNS label of a domain in an allow-list: letters, digits, inner hyphens (IDN in its
#: ``xn--`` form).
DOMAIN_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def _allowed_domain(value: str) -> str:
    """A domain of ``[dashboard] allowed_domains``, lower-case; ``"*"`` is kept as it is."""
    text = value.strip().lower()
    if text == "*":
        return text
    if text.startswith("@"):
        raise ValueError(f"write the domain without the @: {text[1:]!r}")
    if "@" in text:
        raise ValueError("is an email address: put it in allowed_emails, or write only the "
                         "part after the @ here")
    if "*" in text:
        raise ValueError("wildcards are not matched: a domain allows exactly that domain, so "
                         "list each subdomain (e.g. 'eu.example.com') that may sign in, or "
                         "write '*' alone for any user the sign-in provider vouches for")
    labels = text.split(".")
    if len(labels) < 2 or not all(DOMAIN_LABEL_RE.match(label) for label in labels):
        raise ValueError("must be a domain name such as 'example.com' (letters, digits, "
                         "hyphens and dots, at least one dot), or '*' for any user the "
                         "sign-in provider vouches for")
    return text


def _allowed_email(value: str) -> str:
    """An address of ``[dashboard] allowed_emails``, lower-case."""
    text = value.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or "@" in local or any(c.isspace() for c in text):
        raise ValueError("must be one email address such as 'ana@example.com' (one @, no "
                         "spaces); a whole domain goes in allowed_domains")
    if "*" in text:
        raise ValueError("wildcards are not matched: for everyone at a domain, put the domain "
                         "in allowed_domains")
    try:
        _allowed_domain(domain)
    except ValueError:
        raise ValueError(f"has no valid domain after the @ ({domain!r}): it must be a domain "
                         "name such as 'example.com'") from None
    return text


def _any_domain_alone(domains: list[str]) -> list[str]:
    if "*" in domains and len(domains) > 1:
        raise ValueError("'*' already allows every domain: list it alone, or drop it and "
                         "list the domains")
    return domains


AllowedDomains = Annotated[list[Annotated[str, AfterValidator(_allowed_domain)]],
                           AfterValidator(_any_domain_alone)]
AllowedEmail = Annotated[str, AfterValidator(_allowed_email)]


class DashboardConfig(_Strict):
    address: str = "127.0.0.1"
    port: int = Field(default=8501, ge=1, le=65535)
    base_url: str = "http://localhost:8501"
    #: "auto": reading any page (and changing silences) needs a signed-in, allowed user when
    #: the address is not loopback; "always": also on loopback (a dashboard behind a reverse
    #: proxy on the same host).
    require_login: Literal["auto", "always"] = "auto"
    #: st.login provider: "" = the [auth] section of .streamlit/secrets.toml itself, else
    #: the name of an [auth.NAME] section (Streamlit allows no underscore in it).
    auth_provider: str = Field(default="", pattern=r"^[A-Za-z0-9-]*$")
    #: Who may read the dashboard when sign-in is required (dashboard/access.py): these
    #: emails, and every email at exactly these domains ("*" = any the provider vouches
    #: for). Both empty: every signed-in user is refused.
    allowed_emails: list[AllowedEmail] = Field(default_factory=list)
    allowed_domains: AllowedDomains = Field(default_factory=list)


class Config(_Strict):
    """The whole file. ``source`` is where it was read from, for messages."""

    organization: OrganizationConfig
    aws: AwsConfig
    accounts: list[AccountConfig] = Field(default_factory=list)
    collectors: CollectorSections = CollectorSections()
    health: HealthConfig = HealthConfig()
    cost: CostConfig = CostConfig()
    store: StoreConfig = StoreConfig()
    slack: SlackConfig = SlackConfig()
    alerts: AlertsConfig = AlertsConfig()
    heal: HealConfig = HealConfig()
    changes: ChangesConfig = ChangesConfig()
    traces: TracesConfig = TracesConfig()
    export: ExportConfig = ExportConfig()
    dashboard: DashboardConfig = DashboardConfig()
    source: str = Field(default="config.toml", exclude=True)

    @model_validator(mode="after")
    def _accounts_consistent(self) -> Config:
        seen: set[str] = set()
        for account in self.accounts:
            if account.id in seen:
                raise ValueError(f"account id {account.id!r} is listed twice")
            seen.add(account.id)
        if self.organization.discovery == "config" and not self.accounts:
            raise ValueError(
                "no [[accounts]] listed; list them, or set organization.discovery = "
                "'organizations'"
            )
        if self.heal.role_name == self.aws.read_role_name:
            raise ValueError(
                "heal.role_name must differ from aws.read_role_name: the heal role is "
                "the only one allowed to change anything"
            )
        return self

    def collector(self, name: str) -> CollectorConfig:
        """Settings for one collector (its own settings model; the defaults when the file has
        no section for it, the base defaults for a name no collector has)."""
        settings: CollectorConfig | None = getattr(self.collectors, name, None)
        return settings or CollectorConfig()

    def collector_settings(self, name: str, kind: type[SettingsT]) -> SettingsT:
        """A collector's settings as its own settings model ``kind`` (for code that knows the
        collector: its tests, the simulator, the demo). TypeError when they are not."""
        settings = self.collector(name)
        if not isinstance(settings, kind):
            raise TypeError(f"[collectors.{name}] is read as {type(settings).__name__}, "
                            f"not {kind.__name__}")
        return settings

    def with_collector(self, name: str, **changes: Any) -> Config:
        """This config with ``changes`` to one collector's settings (the demo's intervals, a
        test's back-fill)."""
        settings = self.collector(name).model_copy(update=changes)
        return self.model_copy(update={"collectors": self.collectors.model_copy(
            update={name: settings})})

    def collector_value(self, collector: str, key: str, kind: type[SettingT]) -> SettingT:
        """One setting of a collector's section, for spine code that depends on it (the health
        model on the metrics period, the team tag on the cost collector's ``tag_key``).
        Raises KeyError when the collector's settings have no such key of that type, so a
        renamed setting fails loudly instead of falling back to a default."""
        value = getattr(self.collector(collector), key, None)
        if not isinstance(value, kind):
            raise KeyError(f"[collectors.{collector}] has no {kind.__name__} setting {key!r}")
        return value

    def account(self, account_id: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.id == account_id), None)


# --- loading and error reporting -------------------------------------------------------------


def _key_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _allowed_keys(loc: tuple[int | str, ...], root: type[Config] = Config) -> list[str]:
    """The keys the model at ``loc`` accepts (for 'unknown key' messages)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        if args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
            model = args[-1]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            break
    return [name for name in model.model_fields if name != "source"]


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_validation_error(source: str, error: ValidationError,
                            model: type[Config] = Config) -> list[str]:
    """One line per problem: file, key, value and what is allowed."""
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = _key_path(loc)
        kind = item["type"]
        where = f"{source}: {key}" if key else source
        if kind == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(loc[:-1], model))
            lines.append(f"{where}: unknown key (allowed here: {allowed})")
        elif kind == "missing":
            lines.append(f"{where}: required value is missing")
        else:
            message = str(item["msg"]).removeprefix("Value error, ")
            value = f" = {_describe(item['input'])}" if key else ""
            lines.append(f"{where}{value}: {message}")
    return [visible(line) for line in lines]


def parse_config(data: dict[str, Any], source: str = "config.toml", *,
                 model: type[Config]) -> Config:
    """Validate config data against ``model``: :class:`Config` with the registered
    collectors' sections (:func:`orgscope.plugins.parse_config` passes it)."""
    try:
        return model.model_validate({**data, "source": source})
    except ValidationError as error:
        raise ConfigError(format_validation_error(source, error, model)) from None


def load_config(path: str | Path, *, model: type[Config]) -> Config:
    """Read and validate ``path`` against ``model``. Raises :class:`ConfigError` for every
    user mistake (:func:`orgscope.plugins.load_config` passes the model)."""
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{source}: file not found"]) from None
    except OSError as error:
        raise ConfigError([f"{source}: cannot be read ({error.strerror})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError([f"{source}: {_not_utf8(raw, error)}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{source}: not valid TOML: {visible(str(error))}"]) from None
    except RecursionError:
        raise ConfigError([f"{source}: not valid TOML: arrays or tables nested too deeply "
                           "(config.toml nests a few levels)"]) from None
    return parse_config(data, source, model=model)


def _not_utf8(raw: bytes, error: UnicodeDecodeError) -> str:
    """Where a file stops being UTF-8, as a line for :class:`ConfigError`."""
    line = raw.count(b"\n", 0, error.start) + 1
    column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
    return (f"line {line}, column {column}: byte 0x{raw[error.start]:02x} is not UTF-8 text "
            "(config.toml must be saved as UTF-8)")
