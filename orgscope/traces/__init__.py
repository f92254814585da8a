"""Cross-account traces: the ``spans`` dataset, trace and span ids, stitching.

See docs/traces.md.
"""
