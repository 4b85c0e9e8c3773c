"""``edgekit hub`` commands of device identity and trust: the broker's configuration, revoking
devices and API tokens, the command key, and rotating devices' bundle signing keys."""

from __future__ import annotations

import argparse
import time
from typing import Any

from cloud.hub.cli.common import database
from edge.errors import ConfigError


def broker_config(args: argparse.Namespace) -> int:
    from cloud.hub.broker import HUB_USERNAME, write_broker_config

    db = database(args)
    with db.session() as s:
        files = write_broker_config(s, args.out, args.plugin)
    print(f"wrote {files.conf} and {files.dynsec} (hub account {HUB_USERNAME}, "
          f"{files.devices} device accounts)")  # fmt: skip
    print(f"add `include_dir {files.conf.parent}` to your Mosquitto configuration, next to "
          "your listeners; the broker's user must own that directory")  # fmt: skip
    return 0


def revoke_device(args: argparse.Namespace) -> int:
    from cloud.hub.broker import control_for, known_broker_url, revoke
    from cloud.hub.config import HubConfig, default_data_dir
    from cloud.hub.storage import Device

    db = database(args)
    with db.session() as s:
        if s.get(Device, args.device) is None:
            raise ConfigError(f"device {args.device!r} is unknown")
        broker = args.broker or known_broker_url(s)
        # TLS files and a login other than the hub account come from EDGEKIT_HUB_* variables
        cfg = HubConfig.from_env(
            data_dir=args.data_dir or default_data_dir(), db_url=args.db, broker_url=broker
        )
        result = revoke(s, args.device, "cli", lambda: control_for(cfg, db))
    print(f"revoked {result.device}: device token cut, broker account {result.broker}")
    return 0


def token_list(args: argparse.Namespace) -> int:
    from cloud.hub.http.auth import list_api_tokens

    def when(ts: float | None) -> str:
        return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))

    db = database(args)
    with db.session() as s:
        rows = list_api_tokens(s)
    print(f"{'ID':>4}  {'NAME':<24} {'ROLE':<9} {'CREATED':<17} {'LAST USED':<17} REVOKED")
    for r in rows:
        print(f"{r['id']:>4}  {r['name'][:24]:<24} {r['role']:<9} {when(r['created']):<17} "
              f"{when(r['last_used']):<17} {when(r['revoked'])}")  # fmt: skip
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    from cloud.hub.http.auth import revoke_api_token

    db = database(args)
    with db.session() as s:
        row = revoke_api_token(s, args.id)  # ConfigError names an unknown id
        name = row.name or f"token-{row.id}"
    print(f"revoked API token {args.id} ({name}): it is refused from now on")
    return 0


def command_key(args: argparse.Namespace) -> int:
    """Enrolled agents learn this key at enrollment; agents provisioned another way (or
    enrolled before commands were signed) need it in their ``command_keys``."""
    from cloud.hub.commands import command_public_pem

    db = database(args)
    with db.session() as s:
        pem = command_public_pem(s)
    if args.out is None:
        print(pem, end="")
        return 0
    try:
        args.out.write_text(pem)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from None
    print(f"command key written to {args.out}")
    return 0


def push_keys(args: argparse.Namespace) -> int:
    """Sign one ``keys`` command per device with the hub's command key and publish them
    (QoS 1), logging in to the broker as the bridge does."""
    import re

    from cloud.hub.broker import BrokerSettings, known_broker_url
    from cloud.hub.config import HubConfig, default_data_dir
    from edge.bundle import key_id, load_public_key

    added = {}
    for path in args.add:
        key = load_public_key(path)  # SignatureError (an EdgekitError) names a bad file
        added[key_id(key)] = path.read_text()
    bad = [k for k in args.revoke if not re.fullmatch(r"[0-9a-f]{16}", k)]
    if bad:
        raise ConfigError(f"--revoke {bad[0]!r}: a key id is 16 lower-case hex digits")
    if not added and not args.revoke:
        raise ConfigError("give --add PUB.pem and/or --revoke KEYID")
    both = sorted(set(added) & set(args.revoke))
    if both:
        raise ConfigError(f"key {both[0]} is both added and revoked")
    if not 0 < args.ttl_hours <= 24:
        raise ConfigError("--ttl-hours must be more than 0 and at most 24")
    keys = {k: v for k, v in (("add", list(added.values())), ("revoke", args.revoke)) if v}
    db = database(args)
    with db.session() as s:
        devices = _push_targets(s, args.device, args.all)
        broker = args.broker or known_broker_url(s)
        if not broker:
            raise ConfigError("no broker known yet: give --broker mqtt://HOST:PORT")
        cmds = [_keys_command(s, device, keys, args.ttl_hours * 3600.0) for device in devices]
    # TLS files and a login other than the hub account come from EDGEKIT_HUB_* variables
    cfg = HubConfig.from_env(
        data_dir=args.data_dir or default_data_dir(), db_url=args.db, broker_url=broker
    )
    settings = BrokerSettings.resolve(cfg, db)
    _publish_all(settings, cmds)
    what = ", ".join([*(f"+{k}" for k in added), *(f"-{k}" for k in args.revoke)])
    for cmd in cmds:
        print(f"sent {cmd.id} to {cmd.device}: {what}")
    return 0


def _push_targets(session: Any, devices: list[str] | None, every: bool) -> list[str]:
    from sqlalchemy import select

    from cloud.hub.storage import Device

    if every:
        rows = session.scalars(select(Device.id).where(Device.revoked.is_(None))).all()
        if not rows:
            raise ConfigError("no enrolled device to send keys to")
        return sorted(rows)
    for device in devices or []:
        row = session.get(Device, device)
        if row is None:
            raise ConfigError(f"device {device!r} is unknown")
        if row.revoked is not None:
            raise ConfigError(f"device {device!r} is revoked")
    return list(dict.fromkeys(devices or []))


def _keys_command(session: Any, device: str, keys: dict[str, list[str]], ttl: float) -> Any:
    import uuid

    from cloud.hub import commands
    from edge.contract import Command

    now = time.time()
    cmd = Command(id=f"keys-{uuid.uuid4().hex[:12]}", kind="keys", ts=now, expires=now + ttl,
                  device=device, nonce=commands.new_nonce(), keys=keys)  # fmt: skip
    Command.parse(cmd.to_dict())  # the contract's own checks (at most 32 keys each, ...)
    return commands.sign(session, cmd)


def _publish_all(settings: Any, cmds: list[Any]) -> None:
    """Connect, publish every command with QoS 1 and wait for the broker's PUBACKs."""
    import threading

    from edge.contract import CMD, encode_json, topic

    client = settings.client("keys")
    connected, codes = threading.Event(), []

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        codes.append(rc)
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(settings.host, settings.port)
    except OSError as exc:
        raise ConfigError(f"cannot reach the broker {settings.describe()}: {exc}") from exc
    client.loop_start()
    try:
        if not connected.wait(10) or codes[0].is_failure:
            why = codes[0] if codes else "no answer"
            raise ConfigError(f"the broker {settings.describe()} refused the hub: {why}")
        for cmd in cmds:
            info = client.publish(topic(cmd.device, CMD), encode_json(cmd.to_dict()), qos=1)
            info.wait_for_publish(10)
            if not info.is_published():
                raise ConfigError(f"the broker did not acknowledge {cmd.id} for {cmd.device}")
    finally:
        client.disconnect()
        client.loop_stop()
