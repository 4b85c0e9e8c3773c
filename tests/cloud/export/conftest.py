"""Shared fixtures: one real digits run dir and one real export per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloud.export.pipeline import ExportOptions, ExportResult, export
from tests.cloud.export.run_fixture import build_digits_run

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cloud.keys import generate_keypair

    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete run dir: small CNN trained on sklearn digits (about 10 s)."""
    return build_digits_run(tmp_path_factory.mktemp("run") / "digits", epochs=25)


@pytest.fixture(scope="session")
def exported(
    digits_run: Path, keypair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> ExportResult:
    """The digits run exported to all six targets (the pipeline's result)."""
    out = tmp_path_factory.mktemp("bundle") / "digits-v1.ekb"
    opts = ExportOptions(run_dir=digits_run, out=out, name="digits", version=1, key=keypair[0])
    return export(opts, progress=lambda _msg: None)
