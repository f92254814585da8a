"""The orgscope Streamlit dashboard: ``streamlit run dashboard/streamlit_app.py``.

streamlit_app.py is the entrypoint (config, shared sidebar filters, navigation); app_pages/
holds one script per page; the other modules are the pages' data layers, each by concern
(cached, parameterized reads of the store). The one write is a silence, through
alerts/silences.py (docs/architecture.md, "The flow").
"""
