"""Installing a model: the deploy steps (download, verify, self-test, shadow, activate,
probation, commit or roll back), recovery after a crash, and the installer thread.
"""

from edge.install.download import download, sha256_file
from edge.install.installer import Installer
from edge.install.origins import Origin, allowed_origins, check_origin, origin_of
from edge.install.policy import InstallSettings, Policy

__all__ = [
    "InstallSettings",
    "Installer",
    "Origin",
    "Policy",
    "allowed_origins",
    "check_origin",
    "download",
    "origin_of",
    "sha256_file",
]
