"""An embedded MQTT 3.1.1 broker (amqtt) for the demo and for machines without Mosquitto.

It runs in its own process so a slow Python broker never competes with the hub's GIL, and
so the demo can stop it like any other service. Production fleets use Mosquitto, EMQX or
HiveMQ; amqtt is for trying edgekit out with nothing installed.

Given the hub's database (``db_url``) it runs with authentication on: anonymous clients are
refused, devices and the hub log in with their own accounts and use only their own topics
(:mod:`cloud.demo.broker_auth`). Without one it is anonymous, with a warning.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from edge.errors import ConfigError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def broker_config(host: str, port: int, db_url: str | None = None) -> dict[str, object]:
    plugins: dict[str, object]
    if db_url is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        plugins = {
            "cloud.demo.broker_auth.DatabaseAuthPlugin": {"db_url": db_url},
            "cloud.demo.broker_auth.AclTopicPlugin": {"db_url": db_url},
        }
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": plugins,
    }


async def _serve(host: str, port: int, db_url: str | None) -> None:
    import logging

    from amqtt.broker import Broker

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("amqtt").setLevel(logging.ERROR)  # one line per refused client is ours
    broker = Broker(broker_config(host, port, db_url))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


class EmbeddedBroker:
    """Start amqtt on a free loopback port in a child process; stop it on exit."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        db_url: str | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.db_url = db_url  # None: anonymous
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        try:
            import amqtt  # noqa: F401
        except ModuleNotFoundError as exc:
            raise ConfigError(
                "the embedded broker needs amqtt: pip install 'edgekit[broker]', "
                "or pass --broker mqtt://HOST:PORT"
            ) from exc
        cmd = [sys.executable, "-m", "cloud.demo.broker", "--host", self.host]
        cmd += ["--port", str(self.port)]
        if self.db_url is not None:
            cmd += ["--db", self.db_url]
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            out = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
        try:
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if not isinstance(out, int):
                out.close()
        if not wait_for_port(self.host, self.port, timeout):
            self.stop()
            raise ConfigError(f"the embedded broker did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded amqtt broker.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", help="hub database URL: authentication on (else anonymous)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port, args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
