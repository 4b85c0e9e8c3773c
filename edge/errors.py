"""One error hierarchy for edgekit, so callers can catch exactly what they mean.

    EdgekitError
    ├── ConfigError            bad option, config file or environment variable
    ├── ContractError          a payload or manifest that breaks the wire contract
    │   └── ManifestError      manifest.json missing fields or with wrong types
    ├── BundleError            a bundle that cannot be opened or trusted
    │   ├── UnsafeArchiveError path traversal, links, absurd sizes
    │   ├── IntegrityError     a file whose sha256 or size does not match
    │   ├── SignatureError     missing, malformed or wrong signature / key
    │   └── VersionError       version not newer than the installed one
    ├── DataError              a dataset that cannot be used for training
    ├── InputError             an inference input that does not fit the model (has ``code``)
    ├── BackendError           a runtime that is missing or fails to load / run a model
    │   ├── RuntimeMissingError  the runtime's package is not installed
    │   ├── InferenceTimeoutError  no answer within the per-inference time limit
    │   └── NoModelError       no model installed yet
    ├── SelfTestError          a model variant that disagrees with its golden set
    ├── InstallError           a deploy step that failed (has ``step``)
    ├── TransportError         the broker cannot be reached or refused us
    ├── EnrollError            the hub refused the enrollment or could not be reached
    ├── StorageError           a local file (outbox, model store state) unusable
    └── (cloud side, in cloud/errors.py)
        ├── RolloutError       a rollout request or action that is not valid (``conflict``)
        ├── ApiError           a hub HTTP request refused (``status``, ``code``)
        │   └── HubError       bad values for a hub operation (a sample filter, a label)
        ├── UploadError        the hub refused a bundle upload or could not be reached
        ├── NoVariantError     export: no variant survived, nothing to ship
        └── DemoError          a demo step that did not behave as the story says

Foreign errors are translated at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of every error edgekit raises on purpose."""


class ConfigError(EdgekitError):
    """A bad command-line option, config file key or environment variable."""


class ContractError(EdgekitError):
    """A payload or document that does not follow the public contract."""


class ManifestError(ContractError):
    """A manifest.json with missing fields or wrong types."""


class BundleError(EdgekitError):
    """A bundle that cannot be opened or trusted."""


class UnsafeArchiveError(BundleError):
    """An archive member that escapes the bundle, is a link, or is absurdly large."""


class IntegrityError(BundleError):
    """A file whose size or sha256 differs from the manifest, or that is missing."""


class SignatureError(BundleError):
    """A signature that is missing, malformed, or does not verify with the key."""


class VersionError(BundleError):
    """A bundle version that is not allowed to replace the installed one."""


class DataError(EdgekitError):
    """A dataset that cannot be used for training; the message is one line for the user."""


class InputError(EdgekitError):
    """An inference input that does not fit the model's input spec.

    ``code`` is a short stable word (``shape``, ``dtype``, ``nan``, ``range``,
    ``missing_field``, ``extra_field``, ``decode``) that telemetry counts by.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BackendError(EdgekitError):
    """A runtime that fails to load or run a model."""


class RuntimeMissingError(BackendError):
    """The runtime's Python package is not installed on this device."""


class InferenceTimeoutError(BackendError):
    """The model did not answer within the per-inference time limit."""


class NoModelError(BackendError):
    """No model is installed yet; the agent waits for a deploy command."""


class SelfTestError(EdgekitError):
    """A model variant whose outputs on the golden set are outside tolerance."""


class InstallError(EdgekitError):
    """A deploy step that failed; ``step`` names it (downloading, verifying, ...).

    ``code`` is a short stable word the hub acts on, sent as the event's ``detail.code``:
    ``incompatible`` (no variant of the bundle can run on this device) makes the hub mark
    the deployment incompatible instead of failed."""

    def __init__(self, step: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.code = code


class TransportError(EdgekitError):
    """The MQTT broker cannot be reached or refused the connection."""


class StorageError(EdgekitError):
    """A local file the agent keeps (outbox segments, model store state) that is unusable."""


class EnrollError(EdgekitError):
    """The hub refused the enrollment or could not be reached."""
