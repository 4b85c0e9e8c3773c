"""The champion tests' hub (SQLite, and PostgreSQL in the integration tier) and digits."""

from tests.cloud.hub.champion.conftest import any_app, auth, digits

__all__ = ["any_app", "auth", "digits"]
