"""``edgekit agent install-service``: a systemd unit that runs the agent as a service.

The unit is ``Type=notify``: the agent says ``READY=1`` once it serves and pings the
watchdog from its main loop while its worker threads live (edge/agent/sd_notify.py,
edge/agent/liveness.py), so systemd restarts an agent that crashed *or* hung. It runs as
an unprivileged user that can write only its data directory. Only stdlib: an edge-only
install runs this.
"""

from __future__ import annotations

import argparse
import grp
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.durable import write_atomic
from edge.errors import ConfigError

UNIT_NAME = "edgekit-agent.service"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_CONFIG = Path("/etc/edgekit/agent.toml")
DEFAULT_DATA_DIR = Path("/var/lib/edgekit")
STATE_ROOT = Path("/var/lib")
# systemd reads ExecStart words separated by spaces; quoting rules differ from the shell's.
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class UnitSpec:
    """What the unit says; :func:`render` turns it into the file."""

    python: Path
    config: Path = DEFAULT_CONFIG
    data_dir: Path = DEFAULT_DATA_DIR
    user: str = "edgekit"
    group: str = "edgekit"
    watchdog_sec: int = 30
    restart_sec: int = 5

    def check(self) -> None:
        """Refuse what would make a unit systemd misreads or a service that cannot run."""
        for what, path in (("interpreter", self.python), ("--config", self.config),
                           ("--data-dir", self.data_dir)):  # fmt: skip
            if not _SAFE_PATH.match(str(path)):
                raise ConfigError(
                    f"{what} {path}: must be an absolute path of letters, digits and ._/+-"
                )
        for what, name in (("--user", self.user), ("--group", self.group)):
            if not _SAFE_NAME.match(name):
                raise ConfigError(f"{what} {name!r}: not a valid user or group name")
        if self.user == "root":
            raise ConfigError("--user root: the agent runs as a dedicated, unprivileged user")
        if self.watchdog_sec < 0 or self.restart_sec < 0:
            raise ConfigError("--watchdog-sec and --restart-sec must not be negative")
        if self.data_dir == STATE_ROOT or self.data_dir.parent == Path("/"):
            raise ConfigError(f"--data-dir {self.data_dir}: use a directory of its own")

    @property
    def state_directory(self) -> str | None:
        """``StateDirectory=`` name when the data dir lies under /var/lib (systemd then
        creates it, owned by the service user), else None."""
        if self.data_dir.is_relative_to(STATE_ROOT):
            return str(self.data_dir.relative_to(STATE_ROOT))
        return None

    @property
    def home_hidden(self) -> bool:
        """Whether ``ProtectHome=yes`` can be used: not if the interpreter (a venv) lives
        under a home directory, which it would hide."""
        return not self.python.is_relative_to("/home") and not self.python.is_relative_to("/root")


def render(spec: UnitSpec) -> str:
    """The unit file text for ``spec`` (checked first)."""
    spec.check()
    exec_start = (
        f"{spec.python} -m edge.cli agent run --config {spec.config} --data-dir {spec.data_dir}"
    )
    lines = [
        "# Written by `edgekit agent install-service`; see docs/agent.md, 'As a systemd service'.",
        "[Unit]",
        "Description=edgekit edge agent (model installs, inference, fleet reporting)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        "Restart=always",
        f"RestartSec={spec.restart_sec}",
    ]
    if spec.watchdog_sec > 0:
        lines.append(f"WatchdogSec={spec.watchdog_sec}")
    lines += [
        "TimeoutStartSec=120",
        "TimeoutStopSec=30",  # a graceful stop joins threads for at most ~20 s
        f"User={spec.user}",
        f"Group={spec.group}",
        # MALLOC_ARENA_MAX: glibc reserves a 64 MB malloc arena per thread (up to 8 x
        # cores); 2 keeps the agent's address space ~170 MB smaller (docs/agent.md)
        "Environment=PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=2",
        "SyslogIdentifier=edgekit-agent",
    ]
    if spec.state_directory is not None:
        lines += [f"StateDirectory={spec.state_directory}", "StateDirectoryMode=0750"]
    lines += [
        "# Hardening: the agent writes only its data directory.",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={spec.data_dir}",
        f"ProtectHome={'yes' if spec.home_hidden else 'read-only'}",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def starter_config(device_id: str, broker: str) -> str:
    """A config to edit: the keys a fleet device needs, the optional ones commented."""
    return f"""\
# edgekit agent config (docs/agent.md, "Configuration"); every key is also a flag.
# data_dir is set by the systemd unit (--data-dir): the service may write only there.
[agent]
device_id = "{device_id}"
broker = "{broker}"
# trusted_key = "/etc/edgekit/edgekit.pub"   # bundles must be signed with this key
# hub = "http://hub:8080"                   # enroll once with the hub ...
# enroll_token = "..."                      # ... using a token from `edgekit hub enroll-token`
# ca_file = "/etc/edgekit/ca.pem"           # for mqtts:// brokers
# http_port = 8081                          # local HTTP API on 127.0.0.1
"""


def default_device_id() -> str:
    """This machine's host name, reduced to the characters a device id may hold."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip("-.")
    return name or "edge-device"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "install-service",
        help="write a systemd unit that runs the agent as a service",
        description="Write edgekit-agent.service: Type=notify with a watchdog, Restart=always, "
        "a dedicated user, the data dir under /var/lib, hardening. Prints the commands to "
        "run next (useradd, systemctl daemon-reload, enable --now).",
    )
    parser.add_argument("--unit-dir", type=Path, default=DEFAULT_UNIT_DIR)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="agent TOML config")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--user", default="edgekit", help="user the agent runs as")
    parser.add_argument("--group", default=None, help="its group (default: same as --user)")
    parser.add_argument("--watchdog-sec", type=int, default=30, help="0 turns the watchdog off")
    parser.add_argument("--restart-sec", type=int, default=5)
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print the unit to stdout, write nothing")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="overwrite an existing unit")
    parser.add_argument("--write-config", action="store_true",
                        help="also write a starter config at --config if none exists")  # fmt: skip
    parser.add_argument("--device-id", default=None, help="for --write-config (default: hostname)")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="for --write-config")
    parser.set_defaults(handler=install_service)


def install_service(args: argparse.Namespace) -> int:
    spec = UnitSpec(
        python=Path(os.path.abspath(sys.executable)),
        config=args.config,
        data_dir=args.data_dir,
        user=args.user,
        group=args.group or args.user,
        watchdog_sec=args.watchdog_sec,
        restart_sec=args.restart_sec,
    )
    text = render(spec)
    if args.print_only:
        sys.stdout.write(text)
        return 0
    unit = args.unit_dir / UNIT_NAME
    if unit.exists() and not args.force:
        if unit.read_text(errors="replace") == text:
            print(f"{unit} is up to date")
        else:
            print(f"error: {unit} exists and differs; --force overwrites it", file=sys.stderr)
            return 1
    else:
        _write(unit, text.encode(), 0o644)
        print(f"wrote {unit}")
    if args.write_config:
        _write_config(args, spec)
    _print_next(spec, unit)
    return 0


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        path.chmod(mode)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc} (run as root?)") from None


def _write_config(args: argparse.Namespace, spec: UnitSpec) -> None:
    if spec.config.exists():
        print(f"{spec.config} exists; left as it is")
        return
    device = args.device_id or default_device_id()
    _write(spec.config, starter_config(device, args.broker).encode(), 0o640)
    try:  # the service user reads it through its group; other users may not (passwords)
        os.chown(spec.config, -1, grp.getgrnam(spec.group).gr_gid)
    except (KeyError, PermissionError):
        print(f"note: give group {spec.group} read access: chgrp {spec.group} {spec.config}")
    print(f"wrote {spec.config} (device_id {device}; edit it before starting)")


def _print_next(spec: UnitSpec, unit: Path) -> None:
    group = "--user-group" if spec.group == spec.user else f"--gid {spec.group}"
    steps = [f"useradd --system {group} --no-create-home --shell /usr/sbin/nologin {spec.user}"]
    if spec.state_directory is None:
        steps.append(f"install -d -o {spec.user} -g {spec.group} -m 0750 {spec.data_dir}")
    if not spec.config.exists():
        steps.append(f"edgekit agent install-service --write-config  # or write {spec.config}")
    if unit.parent != DEFAULT_UNIT_DIR:
        steps.append(f"cp {unit} {DEFAULT_UNIT_DIR}/")
    steps += [
        "systemctl daemon-reload",
        f"systemctl enable --now {UNIT_NAME}",
        f"systemctl status {UNIT_NAME}   # STATUS= line from the agent",
        "journalctl -u edgekit-agent -f",
    ]
    print("next, as root:")
    for step in steps:
        print(f"  {step}")
