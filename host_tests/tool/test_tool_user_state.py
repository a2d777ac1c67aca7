"""User state survives `make clean`: p11board --qemu's default flash image lives in
~/.local/share/p11board, and an image an older p11board left in BUILD is moved
there, not deleted."""

from __future__ import annotations

import os
import subprocess

import pytest

from harness.p11board import P11Board
from harness.paths import BUILD, ROOT


def _env(home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_DATA_HOME", "MAKEFLAGS", "MAKELEVEL")}
    env["HOME"] = str(home)
    return env


def test_make_clean_keeps_the_qemu_token(tmp_path):
    build = tmp_path / "build"
    (build / "p11board-qemu").mkdir(parents=True)
    (build / "p11board-qemu" / "flash.img").write_bytes(b"token records")
    (build / "unix").mkdir()
    r = subprocess.run(["make", "-s", "clean", f"BUILD={build}"], cwd=ROOT, env=_env(tmp_path / "home"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kept = tmp_path / "home" / ".local" / "share" / "p11board" / "qemu-flash.img"
    assert kept.read_bytes() == b"token records" and "kept the p11board --qemu token" in r.stdout
    assert not build.exists()


def test_make_help_names_every_target_and_variable():
    r = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    for word in ("test-unix", "test-qemu", "PYTEST_ARGS", "BUILD=", "ENDPOINT=", "THING=", "FULL=1",
                 "ERASE_TOKEN=1", "make check", "make clean"):
        assert word in r.stdout, word


@pytest.mark.qemu
def test_default_qemu_flash_image_is_outside_build_and_announced(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    tool = P11Board(["--qemu"], tmp_path)
    r = tool("list", env=_env(home))
    image = home / ".local" / "share" / "p11board" / "qemu-flash.img"
    assert f"new token: created the empty flash image {image}" in r.stderr, r.stderr
    assert image.exists() and BUILD not in image.parents
    r = tool("list", env=_env(home))
    assert "new token" not in r.stderr and str(image) in r.stderr
