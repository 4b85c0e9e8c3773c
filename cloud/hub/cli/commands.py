"""``edgekit hub ...``: serve the hub, manage accounts and tokens, upload bundles.

Token-printing commands print the secret as their LAST line so scripts can take
``| tail -n1``. The identity and trust commands live in :mod:`cloud.hub.cli.security`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from pathlib import Path
from typing import Any

from cloud.hub.cli import dataset_cmd, devices_cmd, rollout_cmd
from cloud.hub.cli.common import database
from cloud.hub.cli.security import (
    broker_config,
    command_key,
    push_keys,
    revoke_device,
    token_list,
    token_revoke,
)
from edge.errors import ConfigError
from edge.messaging import join_broker_urls

ROLES = ("viewer", "operator", "admin")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("hub", help="run and manage the fleet hub")
    sub = p.add_subparsers(dest="hub_command", metavar="HUB_COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--db", help="database URL (default: SQLite in --data-dir)")
        sp.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="hub data dir (default: the per-user ~/.local/share/edgekit/hub)",
        )

    s = sub.add_parser("serve", help="run the hub (waitress)")
    common(s)
    s.add_argument(
        "--broker",
        action="append",
        help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883; repeat it (or separate with commas) "
        "for a cluster: the hub fails over in order (docs/cluster.md)",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080, help="0 picks a free port and prints it")
    s.add_argument("--trusted-key", type=Path, help="Ed25519 public key (PEM) bundles need")
    s.add_argument("--public-url", help="base URL devices download bundles from")
    s.add_argument("--threads", type=int, default=8)
    s.add_argument(
        "--mqtt-version",
        choices=("auto", "5", "3.1.1"),
        default="auto",
        help="MQTT protocol: auto tries 5 and falls back to 3.1.1 (default auto)",
    )
    s.add_argument(
        "--mqtt-consumer",
        choices=("auto", "shared", "lease"),
        default=None,
        help="how hub processes share telemetry and events: MQTT 5 shared subscriptions "
        "(auto: where the broker grants them) or one consumer elected by a database lease, "
        "which survives a Mosquitto restart without loss (docs/hub.md; default "
        "EDGEKIT_HUB_MQTT_CONSUMER, else auto)",
    )
    s.add_argument(
        "--bridge-writer",
        choices=("process", "thread"),
        default="process",
        help="store MQTT messages in a child process (default) or a thread of the hub",
    )
    s.add_argument(
        "--mqtt-username",
        help="broker login (default: the hub account of "
        "broker-config in the database; password in EDGEKIT_HUB_MQTT_PASSWORD)",
    )
    s.add_argument("--mqtt-ca-file", type=Path, help="CA certificate of the broker (TLS)")
    s.add_argument("--mqtt-cert-file", type=Path, help="client certificate for the broker")
    s.add_argument("--mqtt-key-file", type=Path, help="client private key for the broker")
    s.add_argument(
        "--sample-max-age-days",
        type=float,
        default=None,
        help="unlabeled captured samples older than this are deleted "
        "(EDGEKIT_HUB_SAMPLE_MAX_AGE_DAYS; default 30)",
    )
    s.add_argument(
        "--sample-max-count",
        type=int,
        default=None,
        help="keep at most this many samples, oldest unlabeled go first "
        "(EDGEKIT_HUB_SAMPLE_MAX_COUNT; default 100000)",
    )
    s.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        help="samples a minute one device may upload, more get 429 "
        "(EDGEKIT_HUB_SAMPLE_RATE_PER_MINUTE; default 600)",
    )
    s.add_argument(
        "--sample-retention-interval",
        type=float,
        default=None,
        metavar="S",
        help="seconds between two sample retention sweeps "
        "(EDGEKIT_HUB_SAMPLE_RETENTION_INTERVAL_S; default 300)",
    )
    s.set_defaults(handler=_serve)

    bc = sub.add_parser(
        "broker-config",
        help="write a Mosquitto config fragment and dynamic-security file for this hub",
    )
    common(bc)
    bc.add_argument("--out", type=Path, required=True, help="directory to write into")
    bc.add_argument("--plugin", type=Path, help="path of mosquitto_dynamic_security.so")
    bc.set_defaults(handler=broker_config)

    rv = sub.add_parser("revoke-device", help="cut a device's token and broker account now")
    common(rv)
    rv.add_argument("device")
    rv.add_argument(
        "--broker", help="the managed broker's URL (default: where the hub last reached it; "
        "unreachable, the account goes at a hub's next connect)",
    )  # fmt: skip
    rv.set_defaults(handler=revoke_device)

    u = sub.add_parser("create-user", help="add a user for the web page")
    common(u)
    u.add_argument("username")
    u.add_argument("--role", choices=ROLES, default="viewer")
    u.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    u.set_defaults(handler=_create_user)

    t = sub.add_parser("create-token", help="print a new API token (last line)")
    common(t)
    t.add_argument("--role", choices=ROLES, required=True)
    t.add_argument("--name", default="", help="a label for the token")
    t.set_defaults(handler=_create_token)

    e = sub.add_parser("enroll-token", help="print a one-time device enrollment token")
    common(e)
    e.add_argument("--tags", default="", help="comma-separated tags for enrolled devices")
    e.add_argument("--ttl-hours", type=float, default=168.0)
    e.add_argument("--rebind", action="store_true",
                   help="may take over a device id that is already enrolled (its old "
                   "credentials stop working)")  # fmt: skip
    e.set_defaults(handler=_enroll_token)

    tk = sub.add_parser("token", help="list or revoke API tokens")
    tk_sub = tk.add_subparsers(dest="token_command", metavar="TOKEN_COMMAND")
    tl = tk_sub.add_parser("list", help="every API token (never its secret)")
    common(tl)
    tl.set_defaults(handler=token_list)
    tr = tk_sub.add_parser("revoke", help="refuse an API token from now on")
    common(tr)
    tr.add_argument("id", type=int, help="the token's id (see `token list`)")
    tr.set_defaults(handler=token_revoke)
    tk.set_defaults(handler=lambda _a: (tk.print_help(), 2)[1])

    us = sub.add_parser("user", help="manage web page users")
    us_sub = us.add_subparsers(dest="user_command", metavar="USER_COMMAND")
    pw = us_sub.add_parser("passwd", help="set a user's password (ends their sessions)")
    common(pw)
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.set_defaults(handler=_user_passwd)
    us.set_defaults(handler=lambda _a: (us.print_help(), 2)[1])

    ck = sub.add_parser(
        "command-key",
        help="print the public key the hub signs commands with (for agents' command_keys)",
    )
    common(ck)
    ck.add_argument("--out", type=Path, default=None, help="write the PEM to this file instead")
    ck.set_defaults(handler=command_key)

    up = sub.add_parser("upload", help="upload a bundle to a running hub")
    up.add_argument("bundle", type=Path)
    up.add_argument("--hub", required=True, help="hub base URL, e.g. http://127.0.0.1:8080")
    up.add_argument("--token", required=True, help="API token (operator or admin)")
    up.set_defaults(handler=_upload)

    rollout_cmd.register(sub)  # these two speak to a running hub's API, not the DB
    devices_cmd.register(sub)
    dataset_cmd.register(sub)

    pk = sub.add_parser(
        "push-keys",
        help="rotate or revoke devices' bundle signing keys (signed keys commands over MQTT)",
    )
    common(pk)
    pk.add_argument("--add", type=Path, action="append", default=[], metavar="PUB.pem",
                    help="an Ed25519 public key devices should trust from now on")  # fmt: skip
    pk.add_argument("--revoke", action="append", default=[], metavar="KEYID",
                    help="a key id devices must never trust again")  # fmt: skip
    who = pk.add_mutually_exclusive_group(required=True)
    who.add_argument("--device", action="append", metavar="ID", help="a device (repeatable)")
    who.add_argument("--all", action="store_true", help="every enrolled, unrevoked device")
    pk.add_argument("--broker", help="broker URL (default: where the hub last reached it)")
    pk.add_argument("--ttl-hours", type=float, default=12.0,
                    help="how long an offline device may still act on it (max 24)")  # fmt: skip
    pk.set_defaults(handler=push_keys)
    p.set_defaults(handler=lambda _a: (p.print_help(), 2)[1])


def _serve(args: argparse.Namespace) -> int:
    import waitress

    from cloud.hub.app import create_app
    from cloud.hub.config import HubConfig, default_data_dir

    if args.trusted_key is not None and not args.trusted_key.is_file():
        raise ConfigError(f"trusted key {args.trusted_key} does not exist")
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    sock.listen(128)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}"
    cfg = HubConfig(
        data_dir=args.data_dir or default_data_dir(),
        db_url=args.db,
        broker_url=join_broker_urls(args.broker) if args.broker else None,
        trusted_key=args.trusted_key,
        public_url=args.public_url or url,
        mqtt_version=args.mqtt_version,
        mqtt_consumer=args.mqtt_consumer or os.environ.get("EDGEKIT_HUB_MQTT_CONSUMER") or "auto",
        bridge_writer=args.bridge_writer,
        **_sample_settings(args),
        **_mqtt_login(args),
    )
    app = create_app(cfg)
    print(f"edgekit hub listening on {url}", flush=True)
    print(f"port {port}", flush=True)
    print(f"data dir {cfg.data_dir}", flush=True)
    stop_on_sigterm()
    try:
        # waitress buffers a request body before the app sees it: cap it at the upload limit
        # so an oversized body is refused by the server instead of being spooled to disk
        waitress.serve(
            app,
            sockets=[sock],
            threads=args.threads,
            ident="edgekit-hub",
            max_request_body_size=cfg.max_upload_bytes + (1 << 20),
        )
    except Stopped:
        print("edgekit hub: stopped (SIGTERM)", flush=True)
    finally:
        app.extensions["edgekit_hub"].stop()
    return 0


class Stopped(KeyboardInterrupt):
    """SIGTERM arrived: leave the server loop like Ctrl-C does (waitress lets only
    KeyboardInterrupt and SystemExit out of its dispatchers)."""


def stop_on_sigterm() -> None:
    """SIGTERM (systemd, ``docker stop``, Kubernetes) stops the hub as Ctrl-C does: the
    workers are stopped, the bridge drained and the leader lease handed back at once,
    instead of the process dying mid-batch and the lease lapsing after its TTL."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set there (hub serve run in a test thread)

    def handler(_signum: int, _frame: Any) -> None:
        raise Stopped

    signal.signal(signal.SIGTERM, handler)


def _sample_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The captured-sample settings: a flag wins over its EDGEKIT_HUB_* variable, which
    wins over the HubConfig default."""
    import os

    from cloud.hub.config import sample_settings_from_env

    out: dict[str, Any] = dict(sample_settings_from_env(os.environ))
    flags = {
        "sample_max_age_days": args.sample_max_age_days,
        "sample_max_count": args.sample_max_count,
        "sample_rate_per_minute": args.sample_rate,
        "sample_retention_interval_s": args.sample_retention_interval,
    }
    out.update({k: v for k, v in flags.items() if v is not None})
    return out


def _mqtt_login(args: argparse.Namespace) -> dict[str, Any]:
    """The serve flags for the broker login, with the password from the environment (a
    command line is visible to every user of the machine)."""
    import os

    out: dict[str, Any] = {
        "mqtt_ca_file": args.mqtt_ca_file,
        "mqtt_cert_file": args.mqtt_cert_file,
        "mqtt_key_file": args.mqtt_key_file,
    }
    username = args.mqtt_username or os.environ.get("EDGEKIT_HUB_MQTT_USERNAME")
    if username:
        out["mqtt_username"] = username
        out["mqtt_password"] = os.environ.get("EDGEKIT_HUB_MQTT_PASSWORD") or None
    return out


def _read_password(args: argparse.Namespace, what: str) -> str:
    """One line from stdin with --password-stdin (scripts), else a prompt without echo."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return getpass.getpass(f"{what} for {args.username}: ")


def _create_user(args: argparse.Namespace) -> int:
    from cloud.hub.http.auth import create_user

    password = _read_password(args, "password")
    db = database(args)
    with db.session() as s:
        create_user(s, args.username, password, args.role)
    print(f"created user {args.username} ({args.role})")
    return 0


def _create_token(args: argparse.Namespace) -> int:
    from cloud.hub.http.auth import create_api_token

    db = database(args)
    with db.session() as s:
        token = create_api_token(s, args.role, args.name)
    print(f"API token with role {args.role} (shown once):")
    print(token)
    return 0


def _enroll_token(args: argparse.Namespace) -> int:
    from cloud.hub.http.auth import create_enrollment_token
    from edge.contract import DEVICE_ID_RE

    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    bad = [t for t in tags if not DEVICE_ID_RE.match(t)]
    if bad:
        raise ConfigError(f"invalid tag(s): {', '.join(bad)}")
    if args.ttl_hours <= 0:
        raise ConfigError("--ttl-hours must be positive")
    db = database(args)
    with db.session() as s:
        token = create_enrollment_token(s, tags, args.ttl_hours * 3600.0, rebind=args.rebind)
    rebind = ", may re-bind an enrolled id" if args.rebind else ""
    print(f"one-time enrollment token (tags: {', '.join(tags) or 'none'}{rebind}):")
    print(token)
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from cloud.hub.http.auth import set_password
    from cloud.hub.storage import User

    password = _read_password(args, "new password")
    db = database(args)
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == args.username))
        if user is None:
            raise ConfigError(f"user {args.username!r} does not exist")
        ended = set_password(s, user, password)
    print(f"password of {args.username} changed; {ended} session(s) ended")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from cloud.hub.upload import upload_bundle

    result = upload_bundle(args.bundle, args.hub, args.token, progress=True)
    print(f"uploaded {result['name']} v{result['version']}")
    check = result.get("champion")
    if isinstance(check, dict):  # the hub's champion check, made at upload
        print(f"champion check: {check.get('decision')}: {check.get('reason')}")
    return 0
