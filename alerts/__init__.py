"""Alerts: conditions over stored frames, Slack delivery and auto-heal actions.

Alerting (docs/alerts.md): ``rules`` (what is wrong now, pure), ``lifecycle`` (pending ->
firing -> resolved, pure), ``silences``, ``notify`` (routing, grouping, message ids), ``slack``
(Block Kit), ``routing`` (webhooks from env or Secrets Manager), ``outbox`` and ``webhook``
(durable delivery), ``step`` (the I/O edge the ``alerts`` step and ``orgscope alerts`` run),
``datasets``. Auto-heal (docs/heal.md): ``heal_policy`` (pure decisions), ``heal`` (the heal
role's calls), ``heal_datasets``.
"""
