"""The broker side of device identity: per-device accounts and the topics each may use,
the generated Mosquitto configuration, and the dynamic-security control client that
applies enrollments and revocations on the running broker."""

from cloud.hub.broker.accounts import (
    Revocation,
    issue_account,
    known_broker_url,
    reconcile,
    remember_broker_url,
    revoke,
)
from cloud.hub.broker.config_file import BrokerFiles, hub_password, write_broker_config
from cloud.hub.broker.connection import (
    HUB_PASSWORD_SECRET,
    BrokerSettings,
    parse_broker_url,
)
from cloud.hub.broker.credentials import (
    HUB_USERNAME,
    check_password,
    device_acls,
    hash_password,
    hub_acls,
    new_password,
)
from cloud.hub.broker.dynsec import DynsecControl, DynsecError, control_for

__all__ = [
    "HUB_PASSWORD_SECRET",
    "HUB_USERNAME",
    "BrokerFiles",
    "BrokerSettings",
    "DynsecControl",
    "DynsecError",
    "Revocation",
    "check_password",
    "control_for",
    "device_acls",
    "hash_password",
    "hub_acls",
    "hub_password",
    "issue_account",
    "known_broker_url",
    "new_password",
    "parse_broker_url",
    "reconcile",
    "remember_broker_url",
    "revoke",
    "write_broker_config",
]
