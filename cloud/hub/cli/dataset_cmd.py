"""``edgekit hub dataset create|list|show|export``: dataset versions of labeled field
samples on a running hub (REST API), and their export as a folder ``edgekit train`` reads,
optionally merged with the original training data (docs/hub.md, "Datasets")."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from cloud.hub.cli.client import CliError, Exit, HubClient, add_api_flags, quote, run

MAX_EXTRACTED = 8 << 30  # bytes a dataset archive may unpack to


def register(sub: Any) -> None:
    p = sub.add_parser("dataset", help="freeze labeled field samples into dataset versions")
    ds = p.add_subparsers(dest="dataset_command", metavar="DATASET_COMMAND")
    c = ds.add_parser("create", help="freeze the labeled samples a filter matches (next version)")
    c.add_argument("name")
    c.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="device, model, version, reason, predicted, label (repeatable; "
                   "every key must match)")  # fmt: skip
    add_api_flags(c)
    c.set_defaults(handler=lambda a: run(a, _create))
    ls = ds.add_parser("list", help="every dataset with its newest version")
    add_api_flags(ls)
    ls.set_defaults(handler=lambda a: run(a, _list))
    sh = ds.add_parser("show", help="one dataset's versions")
    sh.add_argument("name")
    add_api_flags(sh)
    sh.set_defaults(handler=lambda a: run(a, _show))
    ex = ds.add_parser("export", help="write NAME[@VERSION] as a folder `edgekit train` reads")
    ex.add_argument("ref", metavar="NAME[@VERSION]")
    ex.add_argument("--out", type=Path, required=True, help="the folder to write (new or empty)")
    ex.add_argument("--merge", metavar="ORIGINAL",
                    help="add the original training data: digits, an image folder, a .csv "
                    "or an .npz (the same format as the samples)")  # fmt: skip
    ex.add_argument("--label-column", default="label",
                    help="the label column of a --merge CSV (default label)")  # fmt: skip
    ex.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    add_api_flags(ex)
    ex.set_defaults(handler=lambda a: run(a, _export))
    p.set_defaults(handler=lambda _a: (p.print_help(), 2)[1])


def parse_filters(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--filter takes KEY=VALUE, not {item!r}", Exit.USAGE)
        out[key.strip()] = value.strip()
    return out


def parse_ref(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition("@")
    if not name:
        raise CliError(f"a dataset is NAME or NAME@VERSION, not {ref!r}", Exit.USAGE)
    return name, version or "latest"


def _create(client: HubClient, args: argparse.Namespace) -> Exit:
    from cloud.hub.cli import output as out

    made = client.post("/datasets", {"name": args.name, "filter": parse_filters(args.filter)})
    if args.json:
        out.print_json(made)
    else:
        counts = made.get("counts") or {}
        print(f"{made['name']}@{made['version']}: {counts.get('total')} samples from "
              f"{len(counts.get('by_device') or {})} device(s), {made['fingerprint']}")  # fmt: skip
    return Exit.OK


def _rows(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    from cloud.hub.cli import output as out

    return [(d["name"], d["version"], d.get("kind"), (d.get("counts") or {}).get("total"),
             len((d.get("counts") or {}).get("by_device") or {}), d["fingerprint"][:19],
             out.when(d.get("created"))) for d in items]  # fmt: skip


HEAD = ("NAME", "VERSION", "KIND", "SAMPLES", "DEVICES", "FINGERPRINT", "CREATED")


def _list(client: HubClient, args: argparse.Namespace) -> Exit:
    from cloud.hub.cli import output as out

    rows = client.get("/datasets")
    if args.json:
        out.print_json(rows)
    else:
        print(out.table(HEAD, _rows(rows)))
    return Exit.OK


def _show(client: HubClient, args: argparse.Namespace) -> Exit:
    from cloud.hub.cli import output as out

    d = client.get(f"/datasets/{quote(args.name)}")
    if args.json:
        out.print_json(d)
    else:
        print(out.table(HEAD, _rows(d["versions"])))
    return Exit.OK


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a dataset zip, refusing absolute or escaping names and zip bombs."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if sum(m.file_size for m in members) > MAX_EXTRACTED:
            raise CliError("the dataset archive unpacks to too much data", Exit.USAGE)
        for m in members:
            name = PurePosixPath(m.filename)
            if name.is_absolute() or ".." in name.parts or "\\" in m.filename:
                raise CliError(f"the archive holds an unsafe path {m.filename!r}", Exit.USAGE)
        for m in members:
            if not m.is_dir():
                target = dest / m.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out)


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise CliError(f"{out} exists and is not empty (use --force)", Exit.USAGE)
        if out.is_dir():
            shutil.rmtree(out)
        else:
            out.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _export(client: HubClient, args: argparse.Namespace) -> Exit:
    from cloud.data.field import merge_original, read_meta
    from cloud.data.sources import load_dataset
    from cloud.hub.cli import output as out
    from edge.errors import DataError

    name, version = parse_ref(args.ref)
    _prepare_out(args.out, args.force)
    with tempfile.TemporaryDirectory(prefix="edgekit-dataset-") as tmp:
        zpath = Path(tmp) / "export.zip"
        with zpath.open("wb") as fh:
            client.download(f"/datasets/{quote(name)}/{quote(version)}/archive", fh)
        safe_extract(zpath, args.out)
    try:
        meta = read_meta(args.out)
        if meta is None:
            raise DataError("the archive has no edgekit-dataset.json")
        if args.merge:
            original = load_dataset(args.merge, label_column=args.label_column)
            path = Path(args.merge)
            meta = merge_original(args.out, original, path if path.exists() else None)
    except DataError as exc:
        raise CliError(str(exc), Exit.USAGE) from None
    if args.json:
        out.print_json(meta)
    else:
        merged = meta.get("merged")
        extra = f" + {merged['samples']} from {merged['source']}" if merged else ""
        print(f"{meta['name']}@{meta['version']}: {meta['counts']['total']} field samples"
              f"{extra} -> {args.out} ({meta['format']}); train with: edgekit train "
              f"{args.out}", file=sys.stderr)  # fmt: skip
        print(args.out)
    return Exit.OK
