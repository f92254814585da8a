"""What an exposed dashboard shows instead of a page until its reader may read it: the sign-in
button, the refusal (with a sign-out button), or how to configure sign-in; and, once allowed,
who is signed in with a sign-out button in the sidebar. What is allowed is
:func:`dashboard.access.decide`'s; this module only draws it, and reads no store.
"""

from __future__ import annotations

import logging

import streamlit as st

from dashboard.access import Access

log = logging.getLogger(__name__)

LOGIN_KEY = "orgscope.access.login"
LOGOUT_KEY = "orgscope.access.logout"

#: The [auth] section an operator puts in dashboard/.streamlit/secrets.toml (docs/dashboard.md).
SECRETS_EXAMPLE = """\
[auth]
redirect_uri = "https://orgscope.example.com/oauth2callback"   # <base_url>/oauth2callback
cookie_secret = "<python -c 'import secrets; print(secrets.token_hex(32))'>"
client_id = "<from your identity provider>"
client_secret = "<from your identity provider>"
server_metadata_url = "https://<your IdP>/.well-known/openid-configuration"
"""


def gate(access: Access, provider: str) -> None:
    """The page shown instead of every page while ``access.can_read`` is false."""
    st.title("orgscope")
    if access.offer_login:
        st.info(access.message, icon=":material/lock:")
        if st.button("Sign in", key=LOGIN_KEY, type="primary"):
            st.login(provider or None)
        return
    if access.offer_logout:
        log.info("dashboard refused a signed-in reader: %s", access.message)
        st.error(access.message, icon=":material/block:")
        if st.button("Sign out", key=LOGOUT_KEY):
            st.logout()
        return
    log.warning("dashboard serves no data: %s", access.message)
    st.error(access.message, icon=":material/lock:")
    st.markdown("An OpenID Connect client in `dashboard/.streamlit/secrets.toml` "
                "(or `.streamlit/secrets.toml` where the dashboard runs):")
    st.code(SECRETS_EXAMPLE, language="toml")
    st.markdown("and, in orgscope's config.toml, who may read it:")
    st.code('[dashboard]\nallowed_domains = ["example.com"]\n'
            'allowed_emails = ["contractor@partner.example"]', language="toml")


def signed_in_box(access: Access) -> None:
    """In the sidebar of a signed-in, allowed reader: who, and a sign-out button."""
    if not access.offer_logout:
        return
    st.sidebar.caption(access.message)
    if st.sidebar.button("Sign out", key=LOGOUT_KEY, icon=":material/logout:"):
        st.logout()
