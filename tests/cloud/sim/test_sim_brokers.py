"""The simulator's broker list and id prefix, checked before any process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.sim.cli import _brokers, plan
from cloud.sim.fleet import Fleet, FleetSpec
from edge.cli.main import build_parser
from edge.errors import ConfigError


def test_repeated_and_comma_separated_brokers_make_one_list() -> None:
    args = build_parser().parse_args(
        ["simulate", "--devices", "2", "--trusted-key", "k",
         "--broker", "mqtt://a:1", "--broker", "mqtt://b:2,mqtt://c:3"]
    )  # fmt: skip
    assert _brokers(args.broker) == "mqtt://a:1,mqtt://b:2,mqtt://c:3"


@pytest.mark.parametrize(
    ("given", "words"),
    [(["mqtts://a:1"], "plain mqtt:// only"), (["mqtt://a:1", "ws://b"], "must start with")],
)
def test_bad_brokers_are_refused(given: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        _brokers(given)


def test_a_prefix_that_makes_bad_ids_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--prefix 'cam\.lab'.*NATS"):
        plan(3, 1, "cam.lab")
    with pytest.raises(ConfigError, match="characters"):
        plan(3, 1, "x" * 60)  # "x...x-00001" is longer than 64


def test_the_fleet_takes_the_whole_list(tmp_path: Path) -> None:
    pub = Path(__file__).resolve().parents[3] / "models" / "dev-signing.pub"
    if not pub.exists():
        pytest.skip("models/dev-signing.pub not built")
    spec = FleetSpec(broker="mqtt://a:1,mqtt://b:2", device_ids=["s-1"], trusted_key=str(pub),
                     runtime=None)  # fmt: skip
    fleet = Fleet(spec, tmp_path)
    try:
        assert [e.address for e in fleet.endpoints] == ["a:1", "b:2"]
    finally:
        fleet.close()
    with pytest.raises(ValueError, match="mqtt://HOST:PORT"):
        Fleet(FleetSpec(broker="mqtts://a:1", device_ids=[], trusted_key=str(pub)), tmp_path)
