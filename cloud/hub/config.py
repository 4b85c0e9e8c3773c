"""Hub settings in one typed object, so the CLI, tests and WSGI servers build apps alike."""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from edge.errors import ConfigError

ENV_PREFIX = "EDGEKIT_HUB_"
MQTT_VERSIONS = ("auto", "5", "3.1.1")
# The captured-sample settings and their types: each is EDGEKIT_HUB_<NAME> in the
# environment and a ``hub serve`` flag (cloud/hub/cli/commands.py).
SAMPLE_SETTINGS: dict[str, type[int] | type[float]] = {
    "sample_rate_per_minute": int,
    "sample_max_age_days": float,
    "sample_max_count": int,
    "sample_retention_interval_s": float,
}


def default_data_dir() -> Path:
    """The per-user data dir (``$XDG_DATA_HOME/edgekit/hub``, usually
    ``~/.local/share/edgekit/hub``): a hub started without ``--data-dir`` must not write
    into whatever folder it happened to be started from."""
    return platformdirs.user_data_path("edgekit") / "hub"


@dataclass
class HubConfig:
    """Everything ``create_app`` needs. Unset ``db_url`` means SQLite in ``data_dir``."""

    data_dir: Path = field(default_factory=default_data_dir)
    db_url: str | None = None
    broker_url: str | None = None  # None: no MQTT bridge (API only)
    trusted_key: Path | None = None  # Ed25519 public key PEM; uploads need it
    public_url: str | None = None  # base URL devices download bundles from
    secret_key: str | None = None  # Flask session key; persisted in data_dir when unset
    background: bool = True  # start the rollout ticker and telemetry compaction threads
    tick_interval_s: float = 1.0
    raw_retention_s: float = 24 * 3600.0
    minute_retention_s: float = 30 * 24 * 3600.0
    compaction_interval_s: float = 60.0
    # A device silent this long is shown offline even without a will (e.g. a network cut the
    # broker has not noticed): stale_intervals x its telemetry interval, else offline_after_s.
    offline_after_s: float = 60.0
    stale_intervals: float = 3.0
    bridge_batch_size: int = 1000
    bridge_flush_s: float = 0.5  # how long the idle writer waits before checking for stop
    # thread: parse and store on a thread of the hub; process: in a child process, so the
    # MQTT receive loop and the writer do not share a GIL (edgekit hub serve's default)
    bridge_writer: str = "thread"
    mqtt_consumer: str = "auto"  # auto | shared | lease
    # hubs of one fleet share this group name; None: "edgekit-hub-<tag>" with the database's
    # tag (cloud/hub/ingest/session.py), so two fleets on one broker never split messages
    mqtt_share_group: str | None = None
    mqtt_version: str = "auto"  # auto (5, else 3.1.1) | 5 | 3.1.1
    # The hub's broker login. Unset: the hub account `edgekit hub broker-config` made in the
    # database, else anonymous (with a warning). TLS: mqtts:// or a CA file turns it on.
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_tls_insecure: bool = False  # skip the server name check (tests, never production)
    # The bridge's persistent MQTT session (cloud/hub/ingest/session.py): its client id
    # (unset: edgekit-hub-<tag>-<slot>, a slot per process leased in the database; set it
    # only for a single-process hub) and how long the broker keeps it, with what it queued,
    # while the hub is away. 0: a clean session per connection (nothing kept, as before).
    mqtt_client_id: str | None = None
    mqtt_session_expiry_s: float = 3600.0
    deploy_timeout_s: float = 900.0
    command_ttl_s: float = 3600.0
    max_upload_bytes: int = 512 * 1024 * 1024
    max_body_bytes: int = 1024 * 1024  # any request body but an upload (JSON, forms)
    # captured samples (cloud/hub/samples/): per-device upload rate, and retention (unlabeled
    # samples older than the max age go; over the max count the oldest go, unlabeled first)
    sample_rate_per_minute: int = 600
    sample_max_age_days: float = 30.0
    sample_max_count: int = 100_000
    sample_retention_interval_s: float = 300.0
    testing: bool = False

    def __post_init__(self) -> None:
        # Absolute, so files are found whatever the working directory of the code that
        # opens them (Flask resolves a relative send_file path against the app package).
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if self.trusted_key is not None:
            self.trusted_key = Path(self.trusted_key)
        self._check_mqtt_login()
        self._check_mqtt_session()
        if self.mqtt_consumer not in ("auto", "shared", "lease"):
            raise ConfigError("mqtt_consumer must be auto, shared or lease")
        if self.mqtt_version not in MQTT_VERSIONS:
            raise ConfigError(f"mqtt_version must be one of {', '.join(MQTT_VERSIONS)}")
        if self.mqtt_version == "3.1.1" and self.mqtt_consumer == "shared":
            raise ConfigError("shared subscriptions need MQTT 5; use mqtt_consumer auto or lease")
        for name in (
            "tick_interval_s",
            "bridge_flush_s",
            "compaction_interval_s",
            "offline_after_s",
            "stale_intervals",
            "sample_max_age_days",
            "sample_retention_interval_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.sample_rate_per_minute < 1 or self.sample_max_count < 1:
            raise ConfigError("sample_rate_per_minute and sample_max_count must be at least 1")
        if self.bridge_batch_size < 1:
            raise ConfigError("bridge_batch_size must be at least 1")
        if self.bridge_writer not in ("thread", "process"):
            raise ConfigError("bridge_writer must be thread or process")

    def _check_mqtt_login(self) -> None:
        for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"):
            value = getattr(self, name)
            if value is not None:
                path = Path(value).expanduser()
                if not path.is_file():
                    raise ConfigError(f"{name}: {path} does not exist")
                setattr(self, name, path)
        if (self.mqtt_cert_file is None) != (self.mqtt_key_file is None):
            raise ConfigError("mqtt_cert_file and mqtt_key_file: give both or neither")
        if self.mqtt_password is not None and self.mqtt_username is None:
            raise ConfigError("mqtt_password needs mqtt_username")
        if isinstance(self.mqtt_tls_insecure, str):
            self.mqtt_tls_insecure = self.mqtt_tls_insecure.strip().lower() in ("1", "true", "yes")

    def _check_mqtt_session(self) -> None:
        if self.mqtt_share_group is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,64}", str(self.mqtt_share_group)
        ):
            raise ConfigError("mqtt_share_group: 1 to 64 of A-Z a-z 0-9 _ - (a topic level)")
        if self.mqtt_client_id is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{1,64}", self.mqtt_client_id
        ):
            raise ConfigError("mqtt_client_id: 1 to 64 of A-Z a-z 0-9 _ - (NATS refuses dots)")
        try:
            expiry = float(self.mqtt_session_expiry_s)
        except (TypeError, ValueError):
            raise ConfigError(
                f"mqtt_session_expiry_s must be a number, not {self.mqtt_session_expiry_s!r}"
            ) from None
        if not 0 <= expiry <= 0xFFFFFFFF:  # MQTT 5's Session Expiry Interval is a uint32
            raise ConfigError("mqtt_session_expiry_s must be between 0 and 4294967295")
        self.mqtt_session_expiry_s = expiry

    @property
    def bundle_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def samples_dir(self) -> Path:
        return self.data_dir / "samples"

    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'hub.db').resolve()}"

    def ensure_dirs(self) -> None:
        try:
            self.bundle_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create data dir {self.data_dir}: {exc}") from exc

    def session_secret(self) -> str:
        """The configured secret, else one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        try:
            if path.exists():
                return path.read_text().strip()
            value = secrets.token_hex(32)
            path.write_text(value)
            path.chmod(0o600)
            return value
        except OSError as exc:
            raise ConfigError(f"cannot read or write {path}: {exc}") from exc

    @staticmethod
    def from_env(**overrides: Any) -> HubConfig:
        """Build from ``EDGEKIT_HUB_*`` variables (for ``waitress-serve``/gunicorn factories)."""
        env: dict[str, Any] = {}
        for key in ("data_dir", "db_url", "broker_url", "trusted_key", "public_url", "secret_key"):
            value = os.environ.get(ENV_PREFIX + key.upper())
            if value:
                env[key] = value
        for key in (
            "mqtt_username", "mqtt_password", "mqtt_ca_file", "mqtt_cert_file",
            "mqtt_key_file", "mqtt_tls_insecure",
        ):  # fmt: skip
            value = os.environ.get(ENV_PREFIX + key.upper())
            if value:
                env[key] = value
        for key in (
            "mqtt_consumer", "mqtt_version", "bridge_writer", "mqtt_client_id",
            "mqtt_session_expiry_s", "mqtt_share_group",
        ):  # fmt: skip
            value = os.environ.get(ENV_PREFIX + key.upper())
            if value:
                env[key] = value
        env.update(sample_settings_from_env(os.environ))
        env.update({k: v for k, v in overrides.items() if v is not None})
        return HubConfig(**env)


def sample_settings_from_env(environ: Mapping[str, str]) -> dict[str, int | float]:
    """The ``EDGEKIT_HUB_SAMPLE_*`` variables that are set, as numbers. A value that is no
    number is a ConfigError naming the variable (a typo must not silently keep the default);
    the ranges are checked by :class:`HubConfig` like those of any other source."""
    out: dict[str, int | float] = {}
    for key, kind in SAMPLE_SETTINGS.items():
        name = ENV_PREFIX + key.upper()
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise ConfigError(f"{name} must be {what}, not {raw!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, not {raw!r}")
        out[key] = value
    return out
