"""The /v1 hot path: an async Django view that forwards to the configured provider (see docs/architecture.md)."""


def reset_for_tests() -> None:
    """Forget this process's proxy state (provider config, caches, circuit breaker, usage buffers)."""
    from . import state

    state.reset()
