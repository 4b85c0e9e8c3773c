"""Fault tests reuse the hub tests' signing keys and small real bundles."""

from tests.cloud.hub.conftest import keys, make_bundle  # noqa: F401 - pytest fixtures
