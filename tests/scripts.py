"""Load one of the repository's ``scripts/`` (Python files without a .py suffix) as a module."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str, module_name: str | None = None) -> ModuleType:
    """``scripts/<name>`` executed as a fresh module (not put in ``sys.modules``)."""
    mod = module_name or name.replace("-", "_")
    loader = importlib.machinery.SourceFileLoader(mod, str(SCRIPTS / name))
    spec = importlib.util.spec_from_loader(mod, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
