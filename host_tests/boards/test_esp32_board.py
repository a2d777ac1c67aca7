"""The ESP32_PKCS11 board files, `make esp32` and `make flash`, checked without
ESP-IDF: against the esp32 port of the unpacked MicroPython 1.25 tree."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import BUILD, ROOT

BOARD = ROOT / "boards" / "ESP32_PKCS11"
PORT = BUILD / "micropython" / "ports" / "esp32"
FLASH_SIZE = 4 * 1024 * 1024
SECTOR = 0x1000


def _need_port() -> None:
    if not (PORT / "esp32_common.cmake").exists():
        pytest.fail(f"{PORT} is missing: run `make unix` (it unpacks the sources) first")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("IDF_PATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(extra)
    return env


def _make(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True,
                          text=True, env=env or _env(), timeout=timeout)


# -- the partition table -------------------------------------------------------------

def _partitions(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, ptype, sub, off, size, *_ = [c.strip() for c in line.split(",")]
        rows.append({"name": name, "type": ptype, "subtype": sub, "offset": int(off, 0), "size": int(size, 0)})
    return rows


def test_partition_table_token_partition_aligned_and_apart():
    rows = _partitions(BOARD / "partitions.csv")
    by_name = {r["name"]: r for r in rows}
    assert len(by_name) == len(rows), "partition names must be unique"
    token = by_name["token"]
    assert token["type"] == "data" and int(token["subtype"], 0) == 0x83     # ESP-IDF "littlefs"
    assert token["size"] >= 64 * 1024 and token["size"] % SECTOR == 0
    # ESP-IDF alignment: app partitions on 64 KiB, data on 4 KiB
    for r in rows:
        align = 0x10000 if r["type"] == "app" else SECTOR
        assert r["offset"] % align == 0, r
        assert r["size"] % SECTOR == 0, r
        # after the bootloader and the partition table (0x8000, one sector)
        assert r["offset"] >= 0x9000, r
        assert r["offset"] + r["size"] <= FLASH_SIZE, r
    spans = sorted((r["offset"], r["offset"] + r["size"], r["name"]) for r in rows)
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        assert a1 <= b0, f"{an} overlaps {bn}"
    apps = [r for r in rows if r["type"] == "app"]
    assert len(apps) == 1
    app = apps[0]
    assert not (token["offset"] < app["offset"] + app["size"] and app["offset"] < token["offset"] + token["size"])


def test_partition_table_keeps_the_ports_app_nvs_and_phy():
    _need_port()
    ours = {r["name"]: r for r in _partitions(BOARD / "partitions.csv")}
    port = {r["name"]: r for r in _partitions(PORT / "partitions-4MiB.csv")}
    for name in ("nvs", "phy_init", "factory"):
        assert ours[name] == port[name], name
    # the filesystem only gave up its tail to the token
    assert ours["vfs"]["offset"] == port["vfs"]["offset"]
    assert ours["vfs"]["offset"] + ours["vfs"]["size"] == ours["token"]["offset"]
    assert ours["token"]["offset"] + ours["token"]["size"] == port["vfs"]["offset"] + port["vfs"]["size"]


# -- sdkconfig -----------------------------------------------------------------------

def _board_cmake(tmp_path: Path) -> dict[str, str]:
    """Evaluate mpconfigboard.cmake as the port's CMakeLists.txt includes it."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed to evaluate mpconfigboard.cmake (Debian: apt install cmake)")
    script = tmp_path / "probe.cmake"
    script.write_text(f'set(MICROPY_BOARD_DIR "{BOARD}")\n'
                      f'include("{BOARD}/mpconfigboard.cmake")\n'
                      'message("SDKCONFIG_DEFAULTS=${SDKCONFIG_DEFAULTS}")\n'
                      'message("MICROPY_FROZEN_MANIFEST=${MICROPY_FROZEN_MANIFEST}")\n')
    proc = subprocess.run(["cmake", "-P", str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stderr.splitlines() if "=" in line)


def _sdkconfig(files: list[Path]) -> dict[str, str]:
    """The values ESP-IDF takes from the concatenated fragments (a later line wins)."""
    values: dict[str, str] = {}
    for f in files:
        for line in f.read_text().splitlines():
            line = line.strip()
            if line.startswith("CONFIG_") and "=" in line:
                k, v = line.split("=", 1)
                values[k] = v
    return values


def test_sdkconfig_defaults_are_the_generic_boards_plus_ours(tmp_path):
    _need_port()
    probe = _board_cmake(tmp_path)
    defaults = probe["SDKCONFIG_DEFAULTS"].split(";")
    # the same port fragments as ESP32_GENERIC, in its order, then ours
    generic = (PORT / "boards" / "ESP32_GENERIC" / "mpconfigboard.cmake").read_text()
    assert "boards/sdkconfig.base" in generic and "boards/sdkconfig.ble" in generic
    assert defaults[:3] == ["boards/sdkconfig.base", "boards/sdkconfig.ble", f"{BOARD}/sdkconfig.board"]
    files = [PORT / d if not d.startswith("/") else Path(d) for d in defaults]
    for f in files:
        assert f.exists(), f
    assert probe["MICROPY_FROZEN_MANIFEST"] == f"{BOARD}/manifest.py"

    cfg = _sdkconfig(files)
    assert cfg["CONFIG_PARTITION_TABLE_CUSTOM"] == "y"
    assert cfg["CONFIG_PARTITION_TABLE_CUSTOM_FILENAME"] == f'"{BOARD}/partitions.csv"'
    assert cfg["CONFIG_ESPTOOLPY_FLASHSIZE_4MB"] == "y"
    # what _pkcs11 and the TLS sign hook use from ESP-IDF's mbedTLS
    for key in ("ECP_C", "ECDH_C", "ECDSA_C", "ECP_DP_SECP256R1_ENABLED", "PEM_PARSE_C", "SHA512_C",
                "KEY_EXCHANGE_ECDHE_ECDSA", "KEY_EXCHANGE_ECDHE_RSA", "SSL_PROTO_TLS1_2", "SSL_ALPN"):
        assert cfg[f"CONFIG_MBEDTLS_{key}"] == "y", key
    # TLS 1.3 as on unix (its CertificateVerify goes through the wrapped
    # mbedtls_pk_sign_ext), with what ESP-IDF's Kconfig makes it depend on
    assert cfg["CONFIG_MBEDTLS_SSL_PROTO_TLS1_3"] == "y"
    assert cfg["CONFIG_MBEDTLS_SSL_KEEP_PEER_CERTIFICATE"] == "y"
    assert cfg["CONFIG_MBEDTLS_DYNAMIC_BUFFER"] == "n"
    # our fragment wins over the port's where they differ (ALPN is off in the base)
    assert _sdkconfig([PORT / "boards" / "sdkconfig.base"])["CONFIG_MBEDTLS_SSL_ALPN"] == "n"


def test_c_module_cmake_has_the_tls_hook_link_options():
    cm = (ROOT / "firmware" / "cmodule" / "micropython.cmake").read_text()
    assert "pkcs11/micropython.cmake" in cm and "p11tls/micropython.cmake" in cm
    mod = (ROOT / "firmware" / "cmodule" / "p11tls" / "micropython.cmake").read_text()
    assert "tls_sign_hook.c" in mod
    assert "-Wl,--wrap=mbedtls_pk_sign_restartable" in mod
    assert "-Wl,--wrap=mbedtls_pk_sign_ext" in mod
    assert "-Wl,--undefined=__wrap_mbedtls_pk_sign_restartable" in mod


# -- the frozen manifest ----------------------------------------------------------------

def test_manifest_freezes_the_port_modules_our_boot_and_the_token(tmp_path):
    _need_port()
    sys.path.insert(0, str(BUILD / "micropython" / "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)
    stub = tmp_path / "mpylib"
    stub.mkdir()
    (stub / "README.md").write_text("no micropython-lib\n")
    m = manifestfile.ManifestFile(manifestfile.MODE_FREEZE, {
        "MPY_DIR": str(BUILD / "micropython"), "MPY_LIB_DIR": str(stub),
        "PORT_DIR": str(PORT), "BOARD_DIR": str(BOARD)})
    m.execute(str(BOARD / "manifest.py"))
    targets = [f.target_path for f in m.files()]
    assert len(targets) == len(set(targets)), "a module is frozen twice"
    # every module of the port except its _boot.py, which ours replaces
    port_modules = sorted(p.name for p in (PORT / "modules").glob("*.py"))
    for name in port_modules:
        assert name in targets, name
    boot = [f for f in m.files() if f.target_path == "_boot.py"]
    assert len(boot) == 1 and Path(boot[0].full_path) == BOARD / "modules" / "_boot.py"
    for name in ("p11boot.py", "pkcs11/__init__.py", "pkcs11/api.py", "p11tls.py", "p11csr.py",
                 "mqtt/__init__.py", "mqtt/robust.py", "mqtt/aws.py", "asyncio/core.py"):
        assert name in targets, name
    # our _boot.py does the port's job first
    ours = (BOARD / "modules" / "_boot.py").read_text()
    assert "from flashbdev import bdev" in ours and "inisetup.setup()" in ours
    assert "p11boot.mount_token()" in ours
    # and everything frozen compiles for the board (mpy-cross)
    mpy_cross = BUILD / "micropython" / "mpy-cross" / "build" / "mpy-cross"
    assert mpy_cross.exists()
    for f in m.files():
        out = tmp_path / (f.target_path.replace("/", "_") + ".mpy")
        proc = subprocess.run([str(mpy_cross), "-o", str(out), "-s", f.target_path, f.full_path],
                              capture_output=True, text=True)
        assert proc.returncode == 0, (f.target_path, proc.stderr)


def test_board_header_names_the_board():
    h = (BOARD / "mpconfigboard.h").read_text()
    assert '#define MICROPY_HW_BOARD_NAME "ESP32 module with PKCS#11 token"' in h
    assert '#define MICROPY_HW_MCU_NAME "ESP32"' in h


# -- make esp32 ---------------------------------------------------------------------------

def test_make_esp32_without_idf_path_says_what_to_install(tmp_path):
    proc = _make("esp32", f"BUILD={tmp_path / 'b'}")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "IDF_PATH is not set" in out
    assert "ESP-IDF v5.2, v5.3 or v5.4" in out and "export.sh" in out
    assert not (tmp_path / "b").exists()                 # nothing fetched or built


def _fake_idf(root: Path, major: int, minor: int) -> Path:
    (root / "tools" / "cmake").mkdir(parents=True)
    (root / "tools" / "cmake" / "project.cmake").write_text("# stand-in\n")
    (root / "tools" / "cmake" / "version.cmake").write_text(
        f"set(IDF_VERSION_MAJOR {major})\nset(IDF_VERSION_MINOR {minor})\nset(IDF_VERSION_PATCH 0)\n")
    return root


def test_make_esp32_checks_the_idf_tree_version_and_path(tmp_path):
    proc = _make("esp32", f"BUILD={tmp_path / 'b'}", env=_env(IDF_PATH=str(tmp_path / "nowhere")))
    assert proc.returncode != 0 and "is not an ESP-IDF tree" in proc.stdout
    old = _fake_idf(tmp_path / "idf44", 4, 4)
    proc = _make("esp32", f"BUILD={tmp_path / 'b'}", env=_env(IDF_PATH=str(old)))
    assert proc.returncode != 0 and "ESP-IDF 4.4" in proc.stdout and "v5.2, v5.3 or v5.4" in proc.stdout
    good = _fake_idf(tmp_path / "idf53", 5, 3)
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "idf.py").exists())
    proc = _make("esp32", f"BUILD={tmp_path / 'b'}", env=_env(IDF_PATH=str(good), PATH=path))
    assert proc.returncode != 0 and "idf.py is not on PATH" in proc.stdout and "export.sh" in proc.stdout
    assert not (tmp_path / "b").exists()


def test_make_esp32_hands_the_board_and_c_module_to_the_port_build(tmp_path):
    """With a stand-in idf.py that records its arguments (and fails)."""
    _need_port()
    good = _fake_idf(tmp_path / "idf54", 5, 4)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "idf-args.txt"
    fake = bindir / "idf.py"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\npwd >> {record}\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = _env(IDF_PATH=str(good), PATH=f"{bindir}:{os.environ['PATH']}")
    proc = _make("esp32", f"BUILD={BUILD}", env=env)
    assert proc.returncode != 0 and "ESP32 firmware failed" in proc.stdout
    args = record.read_text().splitlines()
    assert f"MICROPY_BOARD_DIR={BOARD}" in args
    assert f"-DUSER_C_MODULES={ROOT}/firmware/cmodule/micropython.cmake" in args
    assert "-DMICROPY_PY_BTREE=OFF" in args
    assert f"-DMICROPY_LIB_DIR={BUILD}/mpylib" in args
    assert args[args.index("-B") + 1] == str(BUILD / "esp32") and "build" in args
    assert args[-1] == str(PORT)
    # the patched port lets the build turn btree off (no berkeley-db in Debian's source)
    common = (PORT / "esp32_common.cmake").read_text()
    assert "if(NOT DEFINED MICROPY_PY_BTREE)" in common


# -- make flash -----------------------------------------------------------------------------

def _fake_esptool(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "esptool-calls.txt"
    tool = tmp_path / "esptool"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return tool, record


def _fake_build(tmp_path: Path, app_size: int) -> Path:
    b = tmp_path / "build"
    (b / "esp32" / "bootloader").mkdir(parents=True)
    (b / "esp32" / "partition_table").mkdir(parents=True)
    (b / "esp32" / "micropython.bin").write_bytes(b"\xe9" * app_size)
    (b / "esp32" / "bootloader" / "bootloader.bin").write_bytes(b"\xe9" * 100)
    (b / "esp32" / "partition_table" / "partition-table.bin").write_bytes(b"\xaa" * 100)
    # the venv target is satisfied by a stamp (the real one installs esptool)
    (b / "venv").mkdir()
    now = max(os.path.getmtime(ROOT / f) for f in
              ("pyproject.toml", "firmware/requirements-host.txt", "firmware/install-deps.sh")) + 10
    for stamp in (b / ".deps-apt", b / "venv" / ".installed"):
        stamp.touch()
        os.utime(stamp, (now, now))
    return b


def test_make_flash_writes_the_app_partition_only(tmp_path):
    tool, record = _fake_esptool(tmp_path)
    b = _fake_build(tmp_path, 1_500_000)
    token = {r["name"]: r for r in _partitions(BOARD / "partitions.csv")}["token"]

    proc = _make("flash", f"BUILD={b}", f"ESPTOOL={tool}")
    assert proc.returncode != 0 and "make flash PORT=" in proc.stdout

    proc = _make("flash", f"BUILD={b}", f"ESPTOOL={tool}", "PORT=/dev/ttyUSB7")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = record.read_text().splitlines()
    assert calls == [f"--chip esp32 --port /dev/ttyUSB7 --baud 460800 write-flash 0x10000 {b}/esp32/micropython.bin"]
    assert "kept" in proc.stdout

    record.unlink()
    proc = _make("flash", f"BUILD={b}", f"ESPTOOL={tool}", "PORT=/dev/ttyUSB7", "FULL=1", "ERASE_TOKEN=1",
                 "BAUD=921600")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = record.read_text().splitlines()
    assert calls[0].split() == ["--chip", "esp32", "--port", "/dev/ttyUSB7", "--baud", "921600", "write-flash",
                                "0x1000", f"{b}/esp32/bootloader/bootloader.bin",
                                "0x8000", f"{b}/esp32/partition_table/partition-table.bin",
                                "0x10000", f"{b}/esp32/micropython.bin"]
    assert calls[1].split()[-3:] == ["erase-region", f"0x{token['offset']:X}", f"0x{token['size']:X}"]
    assert len(calls) == 2


def test_make_flash_refuses_an_app_larger_than_its_partition(tmp_path):
    tool, record = _fake_esptool(tmp_path)
    app = {r["name"]: r for r in _partitions(BOARD / "partitions.csv")}["factory"]
    b = _fake_build(tmp_path, app["size"] + 1)
    proc = _make("flash", f"BUILD={b}", f"ESPTOOL={tool}", "PORT=/dev/ttyUSB7")
    assert proc.returncode != 0 and "does not fit the app partition" in proc.stdout
    assert not record.exists()
