"""The cloud side's branch of the one error tree rooted at ``edge.errors.EdgekitError``
(the whole tree is drawn there). Each derives from the root, so ``except EdgekitError``
catches every error edgekit raises on purpose, on either side.
"""

from __future__ import annotations

from edge.errors import EdgekitError


class RolloutError(EdgekitError):
    """A rollout request or action that is not valid (bad spec, wrong state)."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict  # True: valid request, but not in the current state


class ApiError(EdgekitError):
    """Raised by routes; ``code`` is a short stable word clients can branch on."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class HubError(ApiError):
    """A hub request or operation with bad values (a sample filter, a label): a 400 unless
    ``status`` says otherwise, so library callers and routes share one check."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid") -> None:
        super().__init__(status, code, message)


class UploadError(EdgekitError):
    """The hub refused the bundle or could not be reached."""


class NoVariantError(EdgekitError):
    """Every variant failed or was left out by the gate: there is nothing to ship."""


class DemoError(EdgekitError):
    """A demo step that did not behave as the story says."""
