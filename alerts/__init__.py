"""Alerts (docs/alerts.md): conditions over stored frames and their delivery to Slack.

``rules`` (every alert rule, one object each: what is wrong now, pure), ``lifecycle``
(pending -> firing -> resolved, pure), ``silences``, ``notify`` (routing, grouping, message
ids), ``slack`` (Block Kit), ``routing`` (webhooks from env or Secrets Manager), ``outbox`` and
``webhook`` (durable delivery), ``step`` (the I/O edge the ``alerts`` step and ``orgscope
alerts`` run). Auto-heal, the one AWS writer, is the ``heal`` package beside this one.
"""
