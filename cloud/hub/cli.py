"""``edgekit hub ...``: serve the hub, manage accounts and tokens, upload bundles.

Token-printing commands print the secret as their LAST line so scripts can take
``| tail -n1``.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

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
    s.add_argument("--broker", help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")
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
        "--bridge-writer",
        choices=("process", "thread"),
        default="process",
        help="store MQTT messages in a child process (default) or a thread of the hub",
    )
    s.set_defaults(handler=_serve)

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
    e.set_defaults(handler=_enroll_token)

    up = sub.add_parser("upload", help="upload a bundle to a running hub")
    up.add_argument("bundle", type=Path)
    up.add_argument("--hub", required=True, help="hub base URL, e.g. http://127.0.0.1:8080")
    up.add_argument("--token", required=True, help="API token (operator or admin)")
    up.set_defaults(handler=_upload)
    p.set_defaults(handler=lambda _a: (p.print_help(), 2)[1])


def _database(args: argparse.Namespace) -> Any:
    from cloud.hub.config import HubConfig, default_data_dir
    from cloud.hub.storage import Database

    cfg = HubConfig(data_dir=args.data_dir or default_data_dir(), db_url=args.db)
    cfg.ensure_dirs()
    db = Database(cfg.database_url())
    db.migrate()
    return db


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
        broker_url=args.broker,
        trusted_key=args.trusted_key,
        public_url=args.public_url or url,
        mqtt_version=args.mqtt_version,
        bridge_writer=args.bridge_writer,
    )
    app = create_app(cfg)
    print(f"edgekit hub listening on {url}", flush=True)
    print(f"port {port}", flush=True)
    print(f"data dir {cfg.data_dir}", flush=True)
    try:
        waitress.serve(app, sockets=[sock], threads=args.threads, ident="edgekit-hub")
    finally:
        app.extensions["edgekit_hub"].stop()
    return 0


def _create_user(args: argparse.Namespace) -> int:
    from cloud.hub.http.auth import create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.username}: ")
    db = _database(args)
    with db.session() as s:
        create_user(s, args.username, password, args.role)
    print(f"created user {args.username} ({args.role})")
    return 0


def _create_token(args: argparse.Namespace) -> int:
    from cloud.hub.http.auth import create_api_token

    db = _database(args)
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
    db = _database(args)
    with db.session() as s:
        token = create_enrollment_token(s, tags, args.ttl_hours * 3600.0)
    print(f"one-time enrollment token (tags: {', '.join(tags) or 'none'}):")
    print(token)
    return 0


def _upload(args: argparse.Namespace) -> int:
    from cloud.hub.upload import upload_bundle

    result = upload_bundle(args.bundle, args.hub, args.token)
    print(f"uploaded {result['name']} v{result['version']}")
    return 0
