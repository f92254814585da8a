"""The orgscope Streamlit dashboard: ``streamlit run dashboard/streamlit_app.py``.

streamlit_app.py is the entrypoint (config, shared sidebar filters, navigation); app_pages/
holds one script per page; data.py is the cached, read-only data layer over the store.
"""
