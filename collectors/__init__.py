"""Collectors: AWS -> pandas DataFrames, one module per data source, plus the registry."""
