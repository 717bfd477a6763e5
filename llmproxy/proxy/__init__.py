"""The /v1 hot path: an async Django view that forwards to the configured provider (see docs/architecture.md)."""
