"""``edgekit tls make-ca --out DIR``: a test CA and certificates for MQTT over TLS."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("tls", help="make a test CA for MQTT over TLS")
    sub = p.add_subparsers(dest="tls_command", metavar="ACTION", required=True)
    m = sub.add_parser(
        "make-ca",
        help="write a CA, a server certificate and optional client certificates",
        description="Make a small test CA (not a production PKI): DIR/ca.crt and ca.key, "
        "DIR/server.crt and server.key for the broker, DIR/client-NAME.crt and .key per "
        "--client. Private keys are written 0600.",
    )
    m.add_argument("--out", required=True, type=Path, help="directory for the files")
    m.add_argument("--server-name", action="append", default=[], metavar="HOST",
                   help="a host name or address clients dial (repeatable; default "
                   "localhost and 127.0.0.1)")  # fmt: skip
    m.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="NAME",
        help="also make a client certificate with this common name (repeatable)",
    )
    m.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    m.add_argument("--force", action="store_true", help="replace an existing CA in DIR")
    m.set_defaults(handler=run_make_ca)


def run_make_ca(args: argparse.Namespace) -> int:
    from cloud.tls import make_ca

    ca = make_ca(args.out, args.server_name or None, args.client, days=args.days,
                 force=args.force)  # fmt: skip
    print(f"CA certificate:     {ca.ca_cert} (give to clients as ca_file)")
    print(f"CA key:             {ca.ca_key} (keep it secret)")
    print(f"server certificate: {ca.server_cert}")
    print(f"server key:         {ca.server_key}")
    for name, (crt, key) in ca.clients.items():
        print(f"client {name}: {crt} {key}")
    return 0
