"""``edgekit keys generate --out DIR``: an Ed25519 signing key pair for bundles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("keys", help="manage bundle signing keys")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    g = sub.add_parser(
        "generate",
        help="write DIR/edgekit.key (private, 0600) and DIR/edgekit.pub",
        description="Generate an Ed25519 key pair. Keep edgekit.key secret on the build "
        "machine; give edgekit.pub to devices as their trusted key.",
    )
    g.add_argument("--out", required=True, type=Path, help="directory for the key files")
    g.add_argument("--force", action="store_true", help="overwrite existing key files")
    g.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from cloud.keys import generate_keypair
    from edge.bundle import key_id, load_public_key

    priv, pub = generate_keypair(args.out, force=args.force)
    print(f"private key: {priv} (keep it secret)")
    print(f"public key:  {pub} (key id {key_id(load_public_key(pub))})")
    return 0
