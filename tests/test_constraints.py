"""constraints.txt pins every dependency pyproject.toml names, each to a version its own
requirement accepts, and scripts/update_constraints writes files of that form."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def parse_constraints(text: str) -> dict[str, Requirement]:
    """{name: requirement} of a constraints file; every line must be ``name==version``."""
    out: dict[str, Requirement] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise ValueError(f"line {number}: {exc}") from None
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or req.extras or req.url:
            raise ValueError(f"line {number}: {line!r} is not a plain name==version pin")
        name = canonicalize_name(req.name)
        if name in out:
            raise ValueError(f"line {number}: {name} pinned twice")
        out[name] = req
    return out


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml (base and every extra), edgekit's own left out."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    reqs = [Requirement(line) for line in lines]
    return [r for r in reqs if canonicalize_name(r.name) != "edgekit"]


def script() -> ModuleType:
    return load_script("update_constraints")


def test_every_declared_dependency_is_pinned_to_a_version_it_accepts() -> None:
    pins = parse_constraints((ROOT / "constraints.txt").read_text())
    missing = sorted({r.name for r in declared() if canonicalize_name(r.name) not in pins})
    assert not missing, f"not in constraints.txt (run scripts/update_constraints): {missing}"
    for req in declared():
        version = next(iter(pins[canonicalize_name(req.name)].specifier)).version
        assert req.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {req.name}=={version}, pyproject.toml asks {req}"
        )


def test_the_file_is_sorted_and_says_how_it_was_made() -> None:
    text = (ROOT / "constraints.txt").read_text()
    names = [ln.split("==")[0] for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert names == sorted(names)
    assert "scripts/update_constraints" in text.splitlines()[1]
    assert "edgekit" not in names


@pytest.mark.parametrize(
    "line",
    ["numpy>=1.26", "numpy", "numpy==1.26 ; python_version < '3'x", "-e .", "numpy==1 numpy==2"],
)
def test_a_line_that_is_not_a_pin_is_refused(line: str) -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_constraints(f"# header\n{line}\n")


def test_a_name_pinned_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="pinned twice"):
        parse_constraints("Foo_Bar==1.0\nfoo-bar==1.0\n")


def test_the_script_writes_a_sorted_file_of_pins() -> None:
    mod = script()
    text = mod.render({"zlib-x": "1.0", "absl-py": "2.1.0"}, "versions in .venv")
    pins = parse_constraints(text)
    assert list(pins) == ["absl-py", "zlib-x"]
    assert text.startswith("# Known-good versions")


def test_the_venv_freeze_leaves_out_edgekit_and_editable_installs() -> None:
    held = script().frozen(Path(sys.executable))
    assert held, "pip freeze of the test venv listed nothing"
    names = {canonicalize_name(line.split("==")[0]) for line in held}
    assert "edgekit" not in names
    assert not [line for line in held if line.startswith("-e")]
    assert "numpy" in names
