"""One Streamlit page script per module, registered in dashboard/streamlit_app.py."""
