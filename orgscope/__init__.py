"""orgscope: cross-account observability and cost for event-driven AWS organizations."""

__version__ = "0.1.0"
