"""``edgekit agent install-service``: the unit it writes (parsed, and verified by
systemd-analyze where it exists), its ExecStart runs this agent, overwrites are refused,
bad options are refused with one line, and the starter config loads."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.agent import config
from edge.cli.agent_service import UNIT_NAME
from edge.cli.main import build_parser, main


def install(tmp_path: Path, *extra: str) -> int:
    return main(["agent", "install-service", "--unit-dir", str(tmp_path / "units"), *extra])


def parse_unit(text: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(text)
    return unit


def test_the_unit_runs_the_agent_as_a_notify_service_with_a_watchdog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(tmp_path, "--watchdog-sec", "20") == 0
    out = capsys.readouterr().out
    text = (tmp_path / "units" / UNIT_NAME).read_text()
    service = parse_unit(text)["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["Restart"] == "always"
    assert "MALLOC_ARENA_MAX=2" in service["Environment"].split()  # fits a 512 MB board
    assert service["WatchdogSec"] == "20"
    assert int(service["RestartSec"]) > 0
    assert (service["User"], service["Group"]) == ("edgekit", "edgekit")
    assert service["StateDirectory"] == "edgekit"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/edgekit"
    assert service["NoNewPrivileges"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["ProtectHome"] in ("yes", "read-only")
    assert "AF_UNIX" in service["RestrictAddressFamilies"]  # NOTIFY_SOCKET is AF_UNIX
    words = shlex.split(service["ExecStart"])
    assert words[0] == sys.executable and Path(words[0]).is_absolute()
    assert words[1:3] == ["-m", "edge.cli"]
    args = build_parser().parse_args(words[3:])  # flags this agent really has
    assert (args.config, args.data_dir) == ("/etc/edgekit/agent.toml", "/var/lib/edgekit")
    assert parse_unit(text)["Install"]["WantedBy"] == "multi-user.target"
    for step in ("useradd --system", "systemctl daemon-reload", f"enable --now {UNIT_NAME}"):
        assert step in out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_finds_nothing_wrong(tmp_path: Path) -> None:
    assert install(tmp_path) == 0
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "units" / UNIT_NAME)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert UNIT_NAME not in done.stderr, done.stderr  # parse warnings name the file


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_check_can_fail(tmp_path: Path) -> None:
    """The check above is not vacuous: a broken unit of the same shape is reported."""
    assert install(tmp_path) == 0
    unit = tmp_path / "units" / UNIT_NAME
    unit.write_text(unit.read_text().replace("WatchdogSec=30", "WatchdogSec=soon"))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "WatchdogSec" in done.stderr or "sec value" in done.stderr


def test_an_existing_unit_is_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(tmp_path) == 0
    unit = tmp_path / "units" / UNIT_NAME
    first = unit.read_text()
    assert install(tmp_path) == 0  # the same text: nothing to do
    assert "up to date" in capsys.readouterr().out
    assert install(tmp_path, "--watchdog-sec", "60") == 1
    assert "--force" in capsys.readouterr().err
    assert unit.read_text() == first
    assert install(tmp_path, "--watchdog-sec", "60", "--force") == 0
    assert "WatchdogSec=60" in unit.read_text()


def test_print_writes_only_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert install(tmp_path, "--print", "--user", "agent", "--watchdog-sec", "0") == 0
    out = capsys.readouterr().out
    service = parse_unit(out)["Service"]
    assert (service["User"], service["Group"]) == ("agent", "agent")
    assert "WatchdogSec" not in service  # 0 turns it off
    assert not (tmp_path / "units").exists()


def test_a_data_dir_outside_var_lib_has_no_state_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert install(tmp_path, "--data-dir", "/srv/edgekit") == 0
    out = capsys.readouterr().out
    service = parse_unit((tmp_path / "units" / UNIT_NAME).read_text())["Service"]
    assert "StateDirectory" not in service
    assert service["ReadWritePaths"] == "/srv/edgekit"
    assert "install -d -o edgekit -g edgekit -m 0750 /srv/edgekit" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--user", "root"], "dedicated"),
        (["--user", "Bad User"], "not a valid user"),
        (["--group", "x;rm"], "not a valid user"),
        (["--config", "etc/agent.toml"], "absolute path"),
        (["--config", "/etc/edge kit/agent.toml"], "absolute path"),
        (["--data-dir", "/var/lib"], "directory of its own"),
        (["--watchdog-sec", "-1"], "negative"),
    ],
)
def test_bad_options_are_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert install(tmp_path, *flags) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "units").exists()


def test_the_starter_config_is_written_only_when_asked_and_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = tmp_path / "etc" / "agent.toml"
    assert install(tmp_path, "--config", str(cfg_path)) == 0
    assert not cfg_path.exists()
    assert "--write-config" in capsys.readouterr().out
    flags = ["--config", str(cfg_path), "--write-config", "--device-id", "cam-7", "--force"]
    assert install(tmp_path, *flags, "--broker", "mqtt://broker:1883") == 0
    assert cfg_path.stat().st_mode & 0o777 == 0o640
    cfg = config.load({"data_dir": str(tmp_path / "data")}, config_file=cfg_path, environ={})
    assert (cfg.device_id, cfg.broker) == ("cam-7", "mqtt://broker:1883")
    cfg_path.write_text('[agent]\ndevice_id = "mine"\n')
    assert install(tmp_path, *flags) == 0  # an existing config is never replaced
    assert cfg_path.read_text() == '[agent]\ndevice_id = "mine"\n'
