"""Fixtures for the host tests. Each concern lives in its own harness/<name>.py;
every public name of those modules (fixtures included) is made visible here."""

import importlib
import pkgutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import harness  # noqa: E402

for _info in pkgutil.iter_modules(harness.__path__):
    _module = importlib.import_module(f"harness.{_info.name}")
    globals().update({k: v for k, v in vars(_module).items() if not k.startswith("_")})
