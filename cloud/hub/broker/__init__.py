"""The broker side of device identity: per-device accounts and the topics each may use."""

from cloud.hub.broker.credentials import (
    HUB_USERNAME,
    check_password,
    device_acls,
    hash_password,
    hub_acls,
    new_password,
)

__all__ = [
    "HUB_USERNAME",
    "check_password",
    "device_acls",
    "hash_password",
    "hub_acls",
    "new_password",
]
