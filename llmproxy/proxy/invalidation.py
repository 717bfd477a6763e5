"""Cross-process invalidation of the proxy's in-process caches (tokens, project keys and status).

Services call these after a change commits. With Redis configured the message is published on a
pub/sub channel that every web process listens to; otherwise only this process's caches are cleared.
"""


def token_changed(token_hash: str) -> None:
    """A token was revoked, reactivated or had its limits changed."""
    # Implemented with the proxy's caches (llmproxy/proxy/auth.py); a no-op until then.


def project_changed(project_id: str) -> None:
    """A project was (de)activated or its upstream key changed."""
