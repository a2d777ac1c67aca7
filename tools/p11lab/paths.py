"""Where this repository's build products are.

The build directory is, in this order:

  1. the `build` argument (a command line's `--build`/`--firmware`/`--elf` option),
  2. the BUILD environment variable (the Makefile exports it),
  3. ./build in the current directory, when it holds a build,
  4. the source checkout's build/, when this package runs from the checkout
     (tools/p11lab/ next to the Makefile).

After `pip install .` only 1-3 apply: run from the repository, or set BUILD.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .errors import BuildNotFound

# <repo>/tools/p11lab/paths.py -> <repo>, when running from a source checkout.
_HERE = Path(__file__).resolve()
SOURCE_ROOT: Path | None = _HERE.parents[2] if (_HERE.parents[2] / "Makefile").is_file() \
    and (_HERE.parents[2] / "firmware").is_dir() else None

_PRODUCTS = ("unix", "qemu", "micropython", "venv")


def _looks_built(d: Path) -> bool:
    return d.is_dir() and any((d / p).exists() for p in _PRODUCTS)


def build_dir(build: Path | str | None = None) -> Path:
    """The build directory (see the module's doc); BuildNotFound when there is none."""
    if build is not None:
        d = Path(build).resolve()
        if not d.is_dir():
            raise BuildNotFound(f"build directory {d} does not exist")
        return d
    env = os.environ.get("BUILD")
    if env:
        d = Path(env).resolve()
        if not d.is_dir():
            raise BuildNotFound(f"BUILD={env}: no such directory (run `make unix qemu` in the "
                                "repository, or point BUILD at its build directory)")
        return d
    here = Path.cwd() / "build"
    if _looks_built(here):
        return here.resolve()
    if SOURCE_ROOT is not None and _looks_built(SOURCE_ROOT / "build"):
        return SOURCE_ROOT / "build"
    raise BuildNotFound("no build directory found: run this from the repository after "
                        "`make unix qemu`, or set BUILD=<repository>/build")


def default_build() -> Path:
    """Where the build directory is, or would be: build_dir() without the error
    (for default values shown in help texts and for fixtures)."""
    try:
        return build_dir()
    except BuildNotFound:
        env = os.environ.get("BUILD")
        if env:
            return Path(env).resolve()
        return (SOURCE_ROOT / "build") if SOURCE_ROOT is not None else Path.cwd() / "build"


def unix_binary(build: Path | str | None = None) -> Path:
    return build_dir(build) / "unix" / "micropython"


def qemu_elf(build: Path | str | None = None) -> Path:
    return build_dir(build) / "qemu" / "firmware.elf"


def require(path: Path, make_target: str) -> Path:
    """`path` if it exists, else BuildNotFound telling which make target builds it."""
    if not path.exists():
        raise BuildNotFound(f"{path} is missing: run `make {make_target}` in the repository "
                            "(or point BUILD at the build directory that has it)")
    return path


def mpremote_cmd() -> list[str]:
    """How to run mpremote: the build's venv, then PATH, then this interpreter's module."""
    try:
        venv = build_dir() / "venv" / "bin" / "mpremote"
    except BuildNotFound:
        venv = None
    if venv is not None and venv.exists():
        return [str(venv)]
    found = shutil.which("mpremote")
    if found:
        return [found]
    return [sys.executable, "-m", "mpremote"]
