"""A full disk during a bundle download: refused up front when the free space is known to be
short, and a write that fails mid-way (a real EFBIG from RLIMIT_FSIZE in a child process)
ends the download at once with a reason naming the disk, not the network, and no .part."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.errors import InstallError
from edge.install import download
from tests.edge.attacks.repository import Repository

ROOT = Path(__file__).resolve().parents[3]
DATA = bytes(range(256)) * 400  # 100 KiB


@pytest.fixture
def repo() -> Iterator[Repository]:
    r = Repository()
    yield r
    r.close()


def test_short_free_space_is_refused_before_any_byte(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    module = sys.modules["edge.install.download"]
    monkeypatch.setattr(module.shutil, "disk_usage", lambda _p: usage(10**6, 10**6 - 5000, 5000))
    url = repo.add(DATA, "ok")
    with pytest.raises(InstallError, match=r"not enough disk space .* 102400 bytes needed, 5000"):
        download(url, tmp_path / "b", max_bytes=10**8, timeout=10, expected_size=len(DATA))
    assert repo.hits() == [] and list(tmp_path.iterdir()) == []


CHILD = """
import json, sys
from pathlib import Path
from edge.errors import InstallError
from edge.install import download
try:
    download(sys.argv[1], Path(sys.argv[2]), max_bytes=10**8, timeout=20,
             expected_size=int(sys.argv[3]))
    print(json.dumps({"ok": True}))
except InstallError as exc:
    print(json.dumps({"ok": False, "step": exc.step, "reason": str(exc)}))
"""


def test_a_write_that_fails_mid_download_is_final_and_clean(
    repo: Repository, tmp_path: Path
) -> None:
    url = repo.add(DATA, "ok")
    limit = 30_000  # the child may write files of at most 30 kB: the bundle is 100 kB

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(tmp_path / "b"), str(len(DATA))],
        cwd=ROOT, capture_output=True, text=True, timeout=60, preexec_fn=small_files,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] is False and result["step"] == "downloading"
    assert "disk full while storing the bundle" in result["reason"], result
    assert f"after {limit} of {len(DATA)} bytes" in result["reason"], result
    assert len(repo.hits()) == 1  # no retries against a full disk
    assert list(tmp_path.iterdir()) == []  # the .part is gone
