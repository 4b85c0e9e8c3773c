"""What governs an install: the install keys of the agent's config, and the trust settings
(which keys bundles must be signed with, which origins bundles may come from).

Declared here, below the agent, so the install steps never import the agent's config.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from edge.bundle import Keyring, PublicKeyLike, Trust
from edge.errors import InstallError
from edge.install.origins import Origin


@dataclass(frozen=True, kw_only=True)
class InstallSettings:
    """The keys that govern installs, shared by AgentConfig and :class:`Policy`
    (which adds the loaded trusted key), so a default is written down only once."""

    pin_runtime: str | None = None
    pin_precision: str | None = None
    pin_threads: int | None = None  # the self-test then times only this thread count
    download_max_bytes: int = 512 * 1024 * 1024
    download_timeout: float = 600.0
    selftest_time_budget: float = 2.0
    shadow_inputs: int = 0
    shadow_timeout: float = 120.0
    shadow_min_agreement: float = 0.0
    probation_seconds: float = 30.0
    probation_min_inferences: int = 0
    probation_max_error_rate: float = 0.05
    probation_max_latency_ratio: float = 3.0
    probation_max_confidence_drop: float = 0.2
    probation_min_latency_increase_ms: float = 10.0


@dataclass(frozen=True, kw_only=True)
class Policy(InstallSettings):
    """The install settings (from AgentConfig), the keys bundles must be signed with (one
    ``trusted_key``, or the device's ``keyring``, which wins when given) and the
    ``origins`` bundles may be downloaded from (the device token goes nowhere else)."""

    trusted_key: PublicKeyLike | None
    allow_unsigned: bool = False
    keyring: Keyring | None = None
    origins: tuple[Origin, ...] = ()

    @classmethod
    def from_settings(
        cls,
        settings: InstallSettings,
        *,
        trusted_key: PublicKeyLike | None,
        allow_unsigned: bool = False,
        keyring: Keyring | None = None,
        origins: tuple[Origin, ...] = (),
    ) -> Policy:
        shared = {f.name: getattr(settings, f.name) for f in fields(InstallSettings)}
        return cls(
            trusted_key=trusted_key,
            allow_unsigned=allow_unsigned,
            keyring=keyring,
            origins=origins,
            **shared,
        )

    @property
    def key(self) -> Trust | None:
        """What bundles are checked against; None only when unsigned ones are allowed."""
        trust: Trust | None = self.trusted_key
        if self.keyring is not None:
            trust = None if self.keyring.empty else self.keyring
        if trust is None and not self.allow_unsigned:
            raise InstallError(
                "verifying",
                "no trusted key configured (set trusted_key or trusted_keys, or allow_unsigned)",
            )
        return trust
