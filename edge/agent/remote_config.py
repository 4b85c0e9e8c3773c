"""What a hub's ``config`` command may change, and how far.

Only run-time tuning keys (nothing that moves files or credentials, so a compromised hub
account cannot point the agent somewhere else), and each numeric one only within a range,
so a remote setting can tune a device but never flood the network (``telemetry_interval
0.001``) or switch its checks off for days. Local settings (file, environment, flags) are
not capped: the operator at the device decides those.
"""

from __future__ import annotations

DAY = 24 * 3600.0

# key -> (lowest, highest) a config command may set; None: a name checked against its list
REMOTE_LIMITS: dict[str, tuple[float, float] | None] = {
    "telemetry_interval": (1.0, DAY),
    "pin_runtime": None,
    "pin_precision": None,
    "keep_versions": (1, 20),
    "inference_timeout": (0.01, 300.0),
    "fallback_error_rate": (0.0, 1.0),
    "fallback_window": (1, 100_000),
    "fallback_min_inferences": (0, 100_000),
    "selftest_time_budget": (0.01, 600.0),
    "shadow_inputs": (0, 100_000),
    "shadow_timeout": (1.0, DAY),
    "shadow_min_agreement": (0.0, 1.0),
    "probation_seconds": (0.0, 7 * DAY),
    "probation_min_inferences": (0, 1_000_000),
    "probation_max_error_rate": (0.0, 1.0),
    "probation_max_latency_ratio": (1.0, 1000.0),
    "probation_max_confidence_drop": (0.0, 1.0),
    "probation_min_latency_increase_ms": (0.0, 60_000.0),
    "replay_rate": (0.01, 1000.0),
    "drift_threshold": (0.01, 10.0),
    "drift_feature_threshold": (0.01, 10.0),
    "input_guard": None,
    "input_guard_margin": (0.0, 10.0),
    "capture": None,  # an object: each of its keys within CAPTURE_LIMITS
}
RUNTIME_KEYS = frozenset(REMOTE_LIMITS)
# capture key -> (lowest, highest) a config command may set: a hub can switch capture on
# and tune it, but not make a device fill its disk, flood the uplink or keep everything
CAPTURE_LIMITS: dict[str, tuple[float, float]] = {
    "max_mb": (1.0, 1024.0),
    "max_per_minute": (1, 600),
    "upload_batch": (1, 64),
    "upload_interval": (1.0, DAY),
    "next": (0, 10_000),
    "random": (0.0, 1.0),
    "low_confidence": (0.0, 1.0),
}


def out_of_range(key: str, value: object, sent: object = None) -> str | None:
    """Why ``value`` (already parsed and validated) may not be set remotely, or None.
    For ``capture`` only the keys the command ``sent`` are checked (what the device's own
    config set stays as it is)."""
    if key == "capture":
        return _capture_out_of_range(value, sent)
    limits = REMOTE_LIMITS.get(key)
    if limits is None or not isinstance(value, (int, float)):
        return None
    lo, hi = limits
    if lo <= value <= hi:
        return None
    return f"{key}: {value} is outside {lo:g}..{hi:g}, the range a remote config may set"


def _capture_out_of_range(policy: object, sent: object) -> str | None:
    values: dict[str, object] = getattr(policy, "to_dict", dict)()
    names = sent.keys() if isinstance(sent, dict) else ()
    for name in names:
        limits = CAPTURE_LIMITS.get(name)
        value = values.get(name)
        if limits is None or not isinstance(value, (int, float)):
            continue
        lo, hi = limits
        if not lo <= value <= hi:
            return (
                f"capture.{name}: {value} is outside {lo:g}..{hi:g}, the range a remote "
                "config may set"
            )
    return None
