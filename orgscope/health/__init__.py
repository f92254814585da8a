"""The event-flow health model: one verdict per rule, with its reasons."""
