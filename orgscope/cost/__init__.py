"""Per-team cost on top of ``cost_daily``: attribution, forecast, anomalies, the monthly review.

Pure functions over DataFrames (attribution, forecast, anomalies, categories, review); the store
is read and written only in :mod:`orgscope.cost.store_io`. docs/cost.md explains every rule.
"""
