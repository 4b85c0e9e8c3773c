"""Agent configuration: one table of keys shared by CLI flags, the TOML file and env vars.

Every key is spelled ``snake_case`` in the TOML file, ``--kebab-case`` on the command line
and ``EDGEKIT_UPPER_CASE`` in the environment. Precedence, lowest first: built-in default,
config file, environment, explicit command-line flag. Every value is validated here so a
bad setting fails at start-up with a one-line ConfigError naming the key, never later.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge.agent.ha_discovery import parse_setting as ha_discovery_setting
from edge.agent.remote_config import RUNTIME_KEYS, out_of_range
from edge.bundle import KEYRING_FILE, Keyring
from edge.capture import CapturePolicy
from edge.contract import PRECISIONS, RUNTIMES, check_device_id
from edge.errors import ConfigError, ContractError, InstallError
from edge.install import InstallSettings, Policy, allowed_origins, origin_of
from edge.messaging import DEFAULT_BROKER, Endpoint, join_broker_urls, parse_broker_urls
from edge.runtime import DEFAULT_GUARD_MARGIN, DEFAULT_GUARD_MODE, GUARD_MODES

log = logging.getLogger(__name__)
ENV_PREFIX = "EDGEKIT_"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


@dataclass(frozen=True, kw_only=True)
class AgentConfig(InstallSettings):
    """Everything the agent needs to run; see docs/agent.md for the meaning of each key.
    The install keys are inherited from :class:`InstallSettings`."""

    device_id: str
    data_dir: Path
    broker: str = DEFAULT_BROKER  # one URL, or several comma-separated (failover in order)
    bundle: Path | None = None
    trusted_key: Path | None = None
    trusted_keys: tuple[Path, ...] = ()
    download_origins: tuple[str, ...] = ()
    allow_unsigned: bool = False
    command_keys: tuple[Path, ...] = ()
    allow_unsigned_commands: bool = False
    hub: str | None = None
    enroll_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    mqtt_version: str = "3.1.1"
    keepalive: int = 30
    telemetry_interval: float = 10.0
    http_port: int | None = None
    replay: Path | None = None
    replay_rate: float = 5.0
    replay_loop: bool = True
    keep_versions: int = 3
    inference_timeout: float = 5.0
    max_queued_requests: int = 256
    infer_response_qos: int = 0
    fallback_error_rate: float = 0.5
    fallback_window: int = 50
    fallback_min_inferences: int = 20
    drift_threshold: float = 0.2
    drift_feature_threshold: float = 0.3
    input_guard: str = DEFAULT_GUARD_MODE
    input_guard_margin: float = DEFAULT_GUARD_MARGIN
    outbox_max_bytes: int = 64 * 1024 * 1024
    outbox_max_messages: int = 100_000
    ha_discovery: str | None = None  # the discovery prefix; None = off
    capture: CapturePolicy = dataclasses.field(default_factory=CapturePolicy)  # off by default

    def install_policy(self, credentials: Mapping[str, Any] | None = None) -> Policy:
        """The installer's policy: the install keys plus the trust settings. Bundles are
        checked against the keyring (``trusted_key``, ``trusted_keys`` and what signed
        ``keys`` commands changed, in DATA_DIR/keyring.json); downloads may go only to
        ``download_origins`` and the ``hub`` the ``credentials`` were enrolled with."""
        configured = [p for p in (self.trusted_key, *self.trusted_keys) if p is not None]
        hub = (credentials or {}).get("hub")
        hub = hub if isinstance(hub, str) else None
        try:
            origins = allowed_origins([*self.download_origins, hub])
        except InstallError as exc:  # a hand-edited credentials file: never the token's way out
            log.error("credentials hub %r ignored: %s", hub, exc)
            origins = allowed_origins(self.download_origins)
        return Policy.from_settings(
            self,
            trusted_key=self.trusted_key,
            allow_unsigned=self.allow_unsigned,
            keyring=Keyring(configured, self.data_dir / KEYRING_FILE),
            origins=origins,
        )

    @property
    def brokers(self) -> tuple[Endpoint, ...]:
        """The broker list, parsed (edge/messaging/brokers.py)."""
        return parse_broker_urls(self.broker)

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def replace(self, **changes: Any) -> AgentConfig:
        """A copy with ``changes`` applied and validated (used by the ``config`` command)."""
        merged = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in FIELDS:
                raise ConfigError(f"unknown config key {key!r}")
            if key == "capture":  # an object of some capture settings: merged, not replaced
                merged[key] = merged[key].merged(value, key)
            else:
                merged[key] = FIELDS[key].parse(value, key)
        return _validated(merged)

    def replace_remote(self, changes: Mapping[str, Any]) -> AgentConfig:
        """:meth:`replace` for a ``config`` command: only :data:`RUNTIME_KEYS`, each within
        its range (edge/agent/remote_config.py)."""
        bad = sorted(set(changes) - RUNTIME_KEYS)
        if bad:
            raise ConfigError(f"keys {', '.join(bad)} cannot be changed remotely")
        cfg = self.replace(**changes)
        for key in changes:
            why = out_of_range(key, getattr(cfg, key), changes[key])
            if why is not None:
                raise ConfigError(why)
        return cfg

    def redacted(self) -> dict[str, Any]:
        """The settings as plain JSON values, secrets hidden, for status and logs."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_KEYS and value is not None:
                value = "***"
            if isinstance(value, tuple):
                value = [str(v) for v in value]
            if isinstance(value, CapturePolicy):
                value = value.to_dict()
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


SECRET_KEYS = frozenset({"password", "enroll_token"})


# --------------------------------------------------------------------------- value parsers


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _path(value: Any, key: str) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_str(value, key)).expanduser()


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{key}: expected an integer, got {value!r}") from None


def _float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    return out


def _paths(value: Any, key: str) -> tuple[Path, ...]:
    """A list of paths: a TOML array, or one comma-separated string (flag, environment)."""
    if isinstance(value, (str, Path)):
        items: list[Any] = [v for v in str(value).split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{key}: expected a list of paths, got {value!r}")
    return tuple(_path(v.strip() if isinstance(v, str) else v, key) for v in items)


def _urls(value: Any, key: str) -> tuple[str, ...]:
    """A list of URLs: a TOML array, or one comma-separated string (flag, environment)."""
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"{key}: expected a list of URLs, got {value!r}")
    return tuple(_str(v, key) for v in items)


def _brokers(value: Any, key: str) -> str:
    """One or more broker URLs (a TOML array, a repeated flag, or comma-separated), kept as
    the one comma-separated string; every URL checked here."""
    if isinstance(value, (list, tuple)) and not value:
        raise ConfigError(f"{key}: at least one mqtt:// or mqtts:// URL is required")
    try:
        return join_broker_urls(value)
    except ConfigError as exc:
        text = str(exc)
        raise ConfigError(text if text.startswith("broker") else f"{key}: {text}") from None


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


@dataclass(frozen=True)
class Field:
    """How one key is parsed and described."""

    parse_value: Callable[[Any, str], Any]
    help: str
    optional: bool = False
    flag_const: str | None = None  # the value of the bare flag (its argument is optional)

    def parse(self, value: Any, key: str) -> Any:
        if value is None or (self.optional and value == ""):
            if not self.optional:
                raise ConfigError(f"{key}: a value is required")
            return None
        return self.parse_value(value, key)


def _f(parse: Callable[[Any, str], Any], help: str) -> Field:
    return Field(parse, help)


def _o(parse: Callable[[Any, str], Any], help: str) -> Field:
    return Field(parse, help, optional=True)


FIELDS: dict[str, Field] = {
    "device_id": _f(_str, "this device's id (1-64 letters, digits, '_', '-')"),
    "data_dir": _f(_path, "directory for models, outbox and credentials"),
    "broker": _f(
        _brokers,
        "MQTT broker URL, mqtt://HOST:PORT or mqtts://HOST:PORT; repeat the flag or separate "
        "URLs with commas for a cluster (failover in order)",
    ),
    "bundle": _o(_path, "install this local bundle at start (offline provisioning)"),
    "trusted_key": _o(_path, "Ed25519 public key (PEM) bundles must be signed with"),
    "trusted_keys": _f(
        _paths, "more Ed25519 public keys (PEM, comma-separated) bundles may be signed with"
    ),
    "download_origins": _f(
        _urls,
        "origins (comma-separated http(s)://HOST:PORT) bundles may be downloaded from, "
        "besides the enrolled hub; the device token is sent to no other",
    ),
    "allow_unsigned": _f(_bool, "accept bundles without a trusted key (development only)"),
    "command_keys": _f(_paths, "public keys (PEM, comma-separated) commands must be signed with"),
    "allow_unsigned_commands": _f(
        _bool, "act on unsigned commands (development only; anyone on the broker can command)"
    ),
    "hub": _o(_str, "hub URL, e.g. http://hub:8080 (enrollment)"),
    "enroll_token": _o(_str, "one-time enrollment token from the hub"),
    "username": _o(_str, "MQTT username"),
    "password": _o(_str, "MQTT password"),
    "ca_file": _o(_path, "CA certificate for mqtts://"),
    "cert_file": _o(_path, "client certificate for mqtts://"),
    "key_file": _o(_path, "client private key for mqtts://"),
    "mqtt_version": _f(_str, "MQTT protocol version: 3.1.1 or 5"),
    "keepalive": _f(_int, "MQTT keepalive in seconds"),
    "telemetry_interval": _f(_float, "seconds between telemetry messages"),
    "http_port": _o(_int, "serve the local HTTP API on 127.0.0.1:PORT (0 = any free port)"),
    "replay": _o(_path, "feed inputs from a .npz/.npy/.csv file or image folder"),
    "replay_rate": _f(_float, "replay inputs per second"),
    "replay_loop": _f(_bool, "start the replay file again when it ends"),
    "pin_runtime": _o(_str, "serve only this runtime (litert, onnxruntime, openvino)"),
    "pin_precision": _o(_str, "serve only this precision (fp32, int8)"),
    "pin_threads": _o(_int, "inference threads (default: the self-test times 1 and 2)"),
    "keep_versions": _f(_int, "installed model versions kept for rollback"),
    "inference_timeout": _f(_float, "per-inference time limit in seconds"),
    "max_queued_requests": _f(_int, "MQTT inference requests queued before refusing"),
    "infer_response_qos": _f(_int, "QoS of infer/res replies: 0 (default, lowest latency) or 1"),
    "fallback_error_rate": _f(_float, "error rate that makes the agent fall back to LKG"),
    "fallback_window": _f(_int, "recent inferences the fallback error rate is computed on"),
    "fallback_min_inferences": _f(_int, "inferences needed before fallback can trigger"),
    "drift_threshold": _f(_float, "PSI of mean input, class mix or confidence that alerts"),
    "drift_feature_threshold": _f(
        _float, "PSI of the worst single feature/channel that alerts (see docs/mqtt-api.md)"
    ),
    "download_max_bytes": _f(_int, "largest bundle download accepted"),
    "download_timeout": _f(_float, "seconds a bundle download may take in total"),
    "selftest_time_budget": _f(_float, "seconds spent timing the variants that pass"),
    "shadow_inputs": _f(_int, "live inputs the new model shadows before activation (0 = off)"),
    "shadow_timeout": _f(_float, "seconds to wait for the shadow inputs"),
    "shadow_min_agreement": _f(_float, "share of shadow predictions that must agree"),
    "probation_seconds": _f(_float, "seconds a new model is watched before commit"),
    "probation_min_inferences": _f(_int, "inferences needed in probation before commit"),
    "probation_max_error_rate": _f(_float, "error rate that fails probation"),
    "probation_max_latency_ratio": _f(
        _float, "p95 latency / self-test latency that fails (with the increase below)"
    ),
    "probation_max_confidence_drop": _f(_float, "drop in mean confidence that fails"),
    "probation_min_latency_increase_ms": _f(
        _float, "p95 latency increase over self-test (ms) also needed to fail"
    ),
    "input_guard": _f(
        _str,
        "tabular inputs outside the training range: warn (serve and count), "
        "refuse (InputError range) or off",
    ),
    "input_guard_margin": _f(
        _float, "how far past the training min/max a value may lie, in training spans"
    ),
    "outbox_max_bytes": _f(_int, "disk bytes the outbox may use before dropping oldest"),
    "outbox_max_messages": _f(_int, "messages the outbox may hold before dropping oldest"),
    "capture": _f(
        CapturePolicy.parse,
        "capture policy: on, off or a JSON object of its keys (docs/agent.md, Capture)",
    ),
    "ha_discovery": Field(
        ha_discovery_setting,
        "publish Home Assistant MQTT discovery (bare flag: prefix homeassistant; or PREFIX)",
        optional=True,
        flag_const="true",
    ),
}
REQUIRED = ("device_id", "data_dir")


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def read_toml(path: Path) -> dict[str, Any]:
    """The ``[agent]`` table (or the top level) of a TOML file, unknown keys refused."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    table = data.get("agent", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [agent] must be a table")
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in FIELDS:
            raise ConfigError(f"config file {path}: unknown key {raw_key!r}")
        out[key] = value
    return out


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Values of the ``EDGEKIT_<KEY>`` variables that name a config key."""
    return {key: environ[env_name(key)] for key in FIELDS if env_name(key) in environ}


def load(
    cli: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Merge defaults < config file < environment < explicit CLI values, then validate.

    ``cli`` holds only the flags the user gave (None means "not given").
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    sources: list[tuple[str, Mapping[str, Any]]] = []
    file_from_env = environ.get(ENV_PREFIX + "CONFIG")
    if config_file is None and file_from_env:
        config_file = Path(file_from_env)
    if config_file is not None:
        sources.append((f"config file {config_file}", read_toml(config_file)))
    sources.append(("environment", {env_name(k): v for k, v in from_env(environ).items()}))
    sources.append(("command line", {k: v for k, v in (cli or {}).items() if v is not None}))
    for where, values in sources:
        for name, value in values.items():
            key = name[len(ENV_PREFIX) :].lower() if name.startswith(ENV_PREFIX) else name
            if key not in FIELDS:
                raise ConfigError(f"{where}: unknown key {name!r}")
            label = name if where == "environment" else key
            merged[key] = FIELDS[key].parse(value, label)
    for key in REQUIRED:
        if merged.get(key) is None:
            raise ConfigError(
                f"{key}: required (--{key.replace('_', '-')}, {env_name(key)} or config file)"
            )
    return _validated(merged)


def _validated(values: dict[str, Any]) -> AgentConfig:
    cfg = AgentConfig(**values)
    _check(cfg)
    return cfg


def _check(cfg: AgentConfig) -> None:  # noqa: C901 - one flat check per key, in table order
    try:
        check_device_id(cfg.device_id)
    except ContractError as exc:
        raise ConfigError(f"device_id: {exc}") from None
    _brokers(cfg.broker, "broker")  # a replace() may carry any string
    if cfg.hub is not None and urlparse(cfg.hub).scheme not in ("http", "https"):
        raise ConfigError(f"hub: expected an http:// or https:// URL, got {cfg.hub!r}")
    if cfg.enroll_token is not None and cfg.hub is None:
        raise ConfigError("enroll_token: needs hub (the URL to enroll with)")
    if cfg.infer_response_qos not in (0, 1):
        raise ConfigError(f"infer_response_qos: expected 0 or 1, got {cfg.infer_response_qos}")
    if cfg.mqtt_version not in ("3.1.1", "5"):
        raise ConfigError(f"mqtt_version: expected 3.1.1 or 5, got {cfg.mqtt_version!r}")
    if cfg.pin_runtime is not None and cfg.pin_runtime not in RUNTIMES:
        raise ConfigError(f"pin_runtime: expected one of {', '.join(RUNTIMES)}")
    if cfg.input_guard not in GUARD_MODES:
        raise ConfigError(f"input_guard: expected one of {', '.join(GUARD_MODES)}")
    if cfg.input_guard_margin < 0:
        raise ConfigError(f"input_guard_margin: must not be negative, got {cfg.input_guard_margin}")
    if cfg.pin_precision is not None and cfg.pin_precision not in PRECISIONS:
        raise ConfigError(f"pin_precision: expected one of {', '.join(PRECISIONS)}")
    if cfg.pin_threads is not None and cfg.pin_threads < 1:
        raise ConfigError(f"pin_threads: must be at least 1, got {cfg.pin_threads}")
    if cfg.http_port is not None and not 0 <= cfg.http_port <= 65535:
        raise ConfigError(f"http_port: expected 0-65535, got {cfg.http_port}")
    if (cfg.cert_file is None) != (cfg.key_file is None):
        raise ConfigError("cert_file and key_file: give both or neither")
    for key in ("bundle", "trusted_key", "ca_file", "cert_file", "key_file", "replay"):
        path = getattr(cfg, key)
        if path is not None and not path.exists():
            raise ConfigError(f"{key}: {path} does not exist")
    for path in cfg.command_keys:
        if not path.is_file():
            raise ConfigError(f"command_keys: {path} is not a file")
    for path in cfg.trusted_keys:
        if not path.is_file():
            raise ConfigError(f"trusted_keys: {path} is not a file")
    for allowed in cfg.download_origins:
        try:
            origin_of(allowed, "download origin")
        except InstallError as exc:
            raise ConfigError(f"download_origins: {exc}") from None
    positive = (
        "telemetry_interval",
        "replay_rate",
        "inference_timeout",
        "download_timeout",
        "selftest_time_budget",
        "shadow_timeout",
        "probation_max_latency_ratio",
        "drift_threshold",
        "drift_feature_threshold",
    )
    for key in positive:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key}: must be greater than 0, got {getattr(cfg, key)}")
    at_least_one = (
        "keepalive",
        "keep_versions",
        "max_queued_requests",
        "fallback_window",
        "download_max_bytes",
        "outbox_max_bytes",
        "outbox_max_messages",
    )
    for key in at_least_one:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}: must be at least 1, got {getattr(cfg, key)}")
    for key in ("fallback_min_inferences", "shadow_inputs", "probation_min_inferences"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}: must not be negative, got {getattr(cfg, key)}")
    for key in ("probation_seconds", "probation_min_latency_increase_ms"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}: must not be negative, got {getattr(cfg, key)}")
    shares = (
        "fallback_error_rate",
        "shadow_min_agreement",
        "probation_max_error_rate",
        "probation_max_confidence_drop",
    )
    for key in shares:
        if not 0.0 <= getattr(cfg, key) <= 1.0:
            raise ConfigError(f"{key}: must be between 0 and 1, got {getattr(cfg, key)}")
