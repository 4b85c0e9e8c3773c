"""``edgekit hub serve --broker`` takes a cluster: repeated and/or comma-separated URLs."""

from __future__ import annotations

from edge.cli.main import build_parser
from edge.messaging import join_broker_urls


def test_repeated_broker_flags_are_all_kept_in_order() -> None:
    args = build_parser().parse_args(
        ["hub", "serve", "--broker", "mqtt://a:1", "--broker", "mqtt://b:2,mqtt://c:3"]
    )
    assert args.broker == ["mqtt://a:1", "mqtt://b:2,mqtt://c:3"]
    assert join_broker_urls(args.broker) == "mqtt://a:1,mqtt://b:2,mqtt://c:3"
    assert build_parser().parse_args(["hub", "serve"]).broker is None  # no bridge
