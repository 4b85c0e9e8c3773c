"""The broker list: one parser for agent, hub and simulator, the failover order with back-off
and jitter, and the words for refusals and drops (no broker needed)."""

from __future__ import annotations

import pytest

from edge.errors import ConfigError
from edge.messaging import Failover, MqttSettings, join_broker_urls, parse_broker_urls
from edge.messaging.brokers import describe, dropped_words, parse_endpoint, refused_words


def test_one_url_and_its_defaults() -> None:
    [e] = parse_broker_urls("mqtt://broker.local")
    assert (e.host, e.port, e.tls, e.username) == ("broker.local", 1883, False, None)
    [t] = parse_broker_urls("mqtts://u%40x:p%3Aw@h:9999")
    assert (t.host, t.port, t.tls, t.username, t.password) == ("h", 9999, True, "u@x", "p:w")
    assert t.address == "h:9999" and "p:w" not in describe([t])


@pytest.mark.parametrize(
    "value",
    [
        "mqtt://a:1,mqtt://b:2",
        " mqtt://a:1 , mqtt://b:2 ,",
        ["mqtt://a:1", "mqtt://b:2"],
        ["mqtt://a:1,mqtt://b:2"],
        ("mqtt://a:1", "mqtt://b:2,"),
    ],
)
def test_lists_are_comma_separated_or_repeated(value: object) -> None:
    eps = parse_broker_urls(value)  # type: ignore[arg-type]
    assert [(e.host, e.port) for e in eps] == [("a", 1), ("b", 2)]
    assert join_broker_urls(value) == "mqtt://a:1,mqtt://b:2"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", "at least one"),
        (",,", "at least one"),
        ([], "at least one"),
        ("http://a:1", "must start with mqtt://"),
        ("mqtt://a:1,tcp://b:2", "must start with mqtt://"),
        ("mqtt://:1", "has no host"),
        ("mqtt://a:99999", "malformed"),
        ("mqtt://a:x", "malformed"),
        ("mqtt://a:1/path", "must not have a path"),
        ("mqtt://a:1,mqtts://b:2", "same scheme"),
        ("mqtt://a:1,mqtt://a:1", "listed twice"),
        ("mqtt://a,mqtt://a:1883", "listed twice"),
        (42, "expected URL"),
        ([1], "expected URL strings"),
    ],
)
def test_bad_lists_are_refused_with_the_reason(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_broker_urls(value)  # type: ignore[arg-type]


def test_parse_endpoint_refuses_non_strings() -> None:
    with pytest.raises(ConfigError, match="non-empty string"):
        parse_endpoint(None)  # type: ignore[arg-type]


def test_settings_take_a_list_and_give_each_broker_its_login() -> None:
    s = MqttSettings(url="mqtt://u1:p1@a:1,mqtt://b:2").validate()
    a, b = s.endpoints()
    assert s.endpoint() == ("a", 1, False)
    assert s.credentials(a) == ("u1", "p1") and s.credentials(b) == (None, None)
    explicit = MqttSettings(url="mqtt://u1:p1@a:1,mqtt://b:2", username="me", password="pw")
    assert explicit.credentials(b) == ("me", "pw")
    with pytest.raises(ConfigError, match="same scheme"):
        MqttSettings(url="mqtt://a:1,mqtts://b:2").validate()


def test_failover_walks_the_list_then_backs_off_with_jitter() -> None:
    eps = parse_broker_urls("mqtt://a:1,mqtt://b:2,mqtt://c:3")
    rolls = iter([0.0, 1.0, 0.5] * 10)
    f = Failover(eps, base=1.0, cap=8.0, rand=lambda: next(rolls))
    assert f.current.host == "a"
    seen = [f.failed() for _ in range(9)]
    assert [e.host for e, _d in seen] == ["b", "c", "a"] * 3
    # round 0: base 1 s, round 1: 2 s, round 2: 4 s; each times 0.5..1 (jitter)
    assert [d for _e, d in seen] == [0.5, 1.0, 0.75, 1.0, 2.0, 1.5, 2.0, 4.0, 3.0]
    for _ in range(20):
        _e, d = f.failed()
        assert d <= 8.0  # capped
    f.connected()
    _e, d = f.failed()
    assert d <= 1.0  # a success resets the back-off


def test_one_broker_is_the_classic_doubling_back_off() -> None:
    f = Failover(parse_broker_urls("mqtt://a:1"), base=1.0, cap=30.0, rand=lambda: 1.0)
    assert [f.failed()[1] for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert f.current.host == "a"


def test_real_jitter_spreads_delays_within_bounds() -> None:
    f = Failover(parse_broker_urls("mqtt://a:1"), base=2.0, cap=2.0)
    delays = {round(f.failed()[1], 6) for _ in range(50)}
    assert len(delays) > 10 and all(1.0 <= d <= 2.0 for d in delays)


def test_failover_refuses_nonsense() -> None:
    with pytest.raises(ConfigError):
        Failover([])
    with pytest.raises(ConfigError):
        Failover(parse_broker_urls("mqtt://a:1"), base=0)
    with pytest.raises(ConfigError):
        Failover(parse_broker_urls("mqtt://a:1"), base=5, cap=1)


class Reason:
    """Stands in for paho's ReasonCode: a value and a name."""

    def __init__(self, value: int, name: str) -> None:
        self.value, self.name = value, name

    def __str__(self) -> str:
        return self.name


def test_refusals_keep_the_brokers_words_and_add_a_hint() -> None:
    ident = refused_words(Reason(0x85, "Client identifier not valid"), "edgekit-agent-cam.1")
    assert ident.startswith("broker refused the connection: Client identifier not valid")
    assert "'.'" in ident and "edgekit-agent-cam.1" in ident
    assert refused_words(Reason(0x87, "Not authorized")) == (
        "broker refused the connection: Not authorized"
    )
    assert "mqtt_version" in refused_words(Reason(0x84, "Unsupported protocol version"))
    assert refused_words(0x86) == "broker refused the connection: 134"  # a bare int
    assert refused_words(Reason(0xA0, "Something new")).endswith("Something new")


def test_drops_say_who_ended_the_connection() -> None:
    lost = dropped_words(Reason(0x80, "Unspecified error"), from_broker=False, accepted=True)
    assert "connection was lost" in lost
    early = dropped_words(Reason(0x80, "Unspecified error"), from_broker=False, accepted=False)
    assert "before accepting" in early and "JetStream" in early
    taken = dropped_words(Reason(0x8E, "Session taken over"), from_broker=True, accepted=True)
    assert "same client id" in taken
    other = dropped_words(Reason(0xA1, "Odd"), from_broker=True, accepted=True)
    assert other == "the broker disconnected us: Odd"
