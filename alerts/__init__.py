"""Alerts: conditions over stored frames, Slack delivery and auto-heal actions.

Nothing lives here yet: alert rules, Slack delivery and auto-heal are built in issue #6. The
settings they will read ([alerts], [slack], [heal] in config.toml) are already validated.
"""
