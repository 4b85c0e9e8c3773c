"""Replay sources: every format, labels, rate, and clear errors for bad files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edge.agent.replay import ReplaySource, load_samples
from edge.errors import ConfigError, InputError
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"


def test_npz_with_labels(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.ones((3, 8, 8)), y=np.array([1, 2, 3]))
    samples = load_samples(p)
    assert [s.label for s in samples] == [1, 2, 3] and samples[0].inputs.shape == (8, 8)


def test_npz_errors(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, data=np.ones(3))
    with pytest.raises(ConfigError, match="needs an array 'x'"):
        load_samples(p)
    np.savez(p, x=np.ones((3, 2)), y=np.ones(2))
    with pytest.raises(ConfigError, match="3 samples but 2 labels"):
        load_samples(p)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"nope")
    with pytest.raises(ConfigError, match="not a readable numpy file"):
        load_samples(bad)
    with pytest.raises(ConfigError, match=r"use a \.npz"):
        load_samples(tmp_path / "x.txt")


def test_npy_and_csv(tmp_path: Path) -> None:
    p = tmp_path / "d.npy"
    np.save(p, np.zeros((4, 3)))
    assert len(load_samples(p)) == 4 and load_samples(p)[0].label is None
    c = tmp_path / "t.csv"
    c.write_text("b,a,label\n1,2,yes\n3,4,7\n")
    s = load_samples(c)
    assert s[0].inputs == {"b": 1.0, "a": 2.0} and s[0].label == "yes" and s[1].label == 7
    plain = tmp_path / "p.csv"
    plain.write_text("1,2\n3,4\n")
    assert load_samples(plain)[1].inputs == [3.0, 4.0]
    broken = tmp_path / "b.csv"
    broken.write_text("a,b\n1\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_samples(broken)
    broken.write_text("a,b\n1,x\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_samples(broken)


def test_image_folder_labels_from_subfolders(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "imgs" / "7").mkdir(parents=True)
    Image.new("L", (8, 8), 128).save(tmp_path / "imgs" / "7" / "a.png")
    Image.new("L", (8, 8), 0).save(tmp_path / "imgs" / "b.png")
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    samples = load_samples(tmp_path / "imgs")
    assert sorted(str(s.label) for s in samples) == ["7", "None"]
    assert all(isinstance(s.inputs, bytes) for s in samples)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        load_samples(tmp_path / "empty")


def test_rate_loop_and_errors_do_not_stop(tmp_path: Path) -> None:
    p = tmp_path / "d.npy"
    np.save(p, np.arange(3.0))
    src = ReplaySource(p, rate=50, loop=True)
    got: list[float] = []

    def sink(x: object, _label: object) -> None:
        got.append(float(x))  # type: ignore[arg-type]
        if len(got) == 2:
            raise InputError("shape", "refused")

    t0 = time.monotonic()
    assert src.run(sink, limit=10) == 10
    elapsed = time.monotonic() - t0
    assert got == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0] and src.errors == 1
    assert 0.15 < elapsed < 2.0  # 10 samples at 50 Hz take about 0.2 s
    with pytest.raises(ConfigError):
        ReplaySource(p, rate=0)
    once = ReplaySource(p, rate=1000, loop=False)
    assert once.run(lambda *_: None) == 3


def test_agent_replay_gives_live_accuracy(tmp_path: Path, kit: dict[str, Path]) -> None:
    from edge.agent import Agent, config
    from edge.messaging import MemoryBroker, MemoryTransport
    from tests.waiting import wait_for

    rng = np.random.default_rng(0)
    p = tmp_path / "r.npz"
    np.savez(p, x=rng.integers(1, 17, (20, 8, 8)).astype(float), y=rng.integers(0, 10, 20))
    cfg = config.load(
        {"device_id": "rp", "data_dir": str(tmp_path / "d"), "trusted_key": str(kit["pub"]),
         "bundle": str(kit["v1"]), "replay": str(p), "replay_rate": "200",
         "telemetry_interval": "3600", "selftest_time_budget": "0.1"},
        environ={},
    )  # fmt: skip
    agent = Agent(cfg, MemoryTransport(MemoryBroker(), "rp"))
    agent.start()
    try:
        assert agent.replay is not None
        wait_for(lambda: agent.replay is not None and agent.replay.sent >= 20)
        metrics = agent.monitor.snapshot()
        assert metrics["accuracy"]["n"] >= 20 and 0.0 <= metrics["accuracy"]["value"] <= 1.0
    finally:
        agent.stop()
