"""`make esp32` / `make flash` for both token boards and the patched esp32 port, checked
without ESP-IDF (issue 14: the first real build failed on three errors in our files).

- `make esp32` must not let BUILD reach the `make -C mpy-cross` that the port's CMake
  runs in a fresh build folder (mpy-cross then built into the ESP32 build folder and
  overwrote its genhdr: `'I2S_NUM_AUTO' undeclared`);
- the patched esp32 CMake must link btree's library only when btree is on
  (`cannot find -lmicropy_extmod_btree`);
- boards/ESP32_C3_PKCS11 shares the partition table, sdkconfig fragment and manifest
  with boards/ESP32_PKCS11; `BOARD=` selects the board for `make esp32` and
  `make flash` (chip, bootloader offset, messages).
(The mbedTLS 3.5 error is test_cmodule_build.py's.)
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from harness.paths import BUILD, ROOT

ESP32 = ROOT / "boards" / "ESP32_PKCS11"
C3 = ROOT / "boards" / "ESP32_C3_PKCS11"
PORT = BUILD / "micropython" / "ports" / "esp32"
MPY_CROSS = BUILD / "micropython" / "mpy-cross" / "build" / "mpy-cross"


def _need_port() -> None:
    if not (PORT / "esp32_common.cmake").exists():
        pytest.fail(f"{PORT} is missing: run `make unix` (it unpacks the sources) first")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("IDF_PATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "BUILD", "BOARD")}
    env.update(extra)
    return env


def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True,
                          text=True, env=env or _env(), timeout=600)


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _fake_idf(tmp_path: Path, idf_py_body: str) -> dict[str, str]:
    """An ESP-IDF v5.2 stand-in and an idf.py running idf_py_body (sh); the env for make."""
    idf = tmp_path / "idf"
    (idf / "tools" / "cmake").mkdir(parents=True)
    (idf / "tools" / "cmake" / "project.cmake").write_text("# stand-in\n")
    (idf / "tools" / "cmake" / "version.cmake").write_text(
        "set(IDF_VERSION_MAJOR 5)\nset(IDF_VERSION_MINOR 2)\nset(IDF_VERSION_PATCH 2)\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _executable(bindir / "idf.py", "#!/bin/sh\n" + idf_py_body)
    return _env(IDF_PATH=str(idf), PATH=f"{bindir}:{os.environ['PATH']}")


# -- error 1: BUILD reached mpy-cross's make through MAKEFLAGS ------------------------------

def test_make_esp32_does_not_hand_build_to_the_mpy_cross_make(tmp_path):
    """The stand-in idf.py does what the port's CMake does for a fresh build folder
    (py/mkrules.cmake): `make -C <mpy-cross>` in the environment it was given, unless
    MICROPY_MPYCROSS names an mpy-cross. Our stand-in mpy-cross Makefile reports the
    BUILD it would build into."""
    _need_port()
    fake_mpy_cross = tmp_path / "mpy-cross"
    fake_mpy_cross.mkdir()
    report = tmp_path / "mpy-cross-make.txt"
    (fake_mpy_cross / "Makefile").write_text(
        f"BUILD ?= build\nall:\n\t@echo 'origin=$(origin BUILD) BUILD=$(BUILD)' > {report}\n")
    env_dump = tmp_path / "idf-env.txt"
    env = _fake_idf(tmp_path, f'env > {env_dump}\nmake -C {fake_mpy_cross} USER_C_MODULES=\nexit 1\n')
    # BUILD on the command line, as ../shared/tools/esp32c3/build.sh and users give it
    proc = _make("esp32", f"BUILD={BUILD}", env=env)
    assert proc.returncode != 0 and "ESP32 firmware failed" in proc.stdout, proc.stdout + proc.stderr
    assert report.read_text().split() == ["origin=file", "BUILD=build"]
    idf_env = dict(line.split("=", 1) for line in env_dump.read_text().splitlines() if "=" in line)
    assert "BUILD" not in idf_env
    assert "BUILD=" not in idf_env.get("MAKEFLAGS", "")
    # and CMake is given the mpy-cross built by `make esp32`, so it runs no make at all
    assert idf_env.get("MICROPY_MPYCROSS") == str(MPY_CROSS)


def test_the_mpy_cross_check_sees_a_leaking_build(tmp_path):
    """Negative control: a port make given BUILD on its command line (the old target)
    leaks it to the stand-in mpy-cross make."""
    fake_mpy_cross = tmp_path / "mpy-cross"
    fake_mpy_cross.mkdir()
    report = tmp_path / "mpy-cross-make.txt"
    (fake_mpy_cross / "Makefile").write_text(
        f"BUILD ?= build\nall:\n\t@echo 'BUILD=$(BUILD)' > {report}\n")
    port = tmp_path / "port"
    port.mkdir()
    (port / "Makefile").write_text(f"all:\n\tmake -C {fake_mpy_cross} USER_C_MODULES=\n")
    subprocess.run(["make", "-s", "-C", str(port), "BUILD=/somewhere/esp32"], env=_env(), check=True,
                   capture_output=True)
    assert report.read_text().split() == ["BUILD=/somewhere/esp32"]


# -- error 3: the btree link -----------------------------------------------------------------

def _conditions_of(cmake: str, pattern: str) -> list[list[str]]:
    """For each line matching pattern, the if() conditions enclosing it."""
    stack: list[str] = []
    found = []
    for raw in cmake.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"(if|elseif|else|endif)\s*\((.*)\)\s*$", line)
        if m:
            kind, cond = m.groups()
            if kind == "if":
                stack.append(cond.strip())
            elif kind == "endif":
                stack.pop()
            elif kind == "else":
                stack[-1] = f"NOT ({stack[-1]})"
            else:
                stack[-1] = cond.strip()
            continue
        if re.search(pattern, line):
            found.append(list(stack))
    assert not stack, "unbalanced if/endif"
    return found


def test_patched_esp32_cmake_links_btree_only_when_btree_is_on():
    _need_port()
    common = (PORT / "esp32_common.cmake").read_text()
    links = _conditions_of(common, r"target_link_libraries\(.*micropy_extmod_btree")
    assert links, "the port no longer links btree: review firmware/patches/esp32-btree-optional.patch"
    for conds in links:
        assert "MICROPY_PY_BTREE" in conds, f"unconditional btree link (conditions: {conds})"
    # the library exists only under the same condition (extmod.cmake)
    extmod = (BUILD / "micropython" / "extmod" / "extmod.cmake").read_text()
    defs = _conditions_of(extmod, r"add_library\(micropy_extmod_btree")
    assert defs and all("MICROPY_PY_BTREE" in conds for conds in defs)
    # and the build can turn btree off (Debian's source has no berkeley-db)
    assert "if(NOT DEFINED MICROPY_PY_BTREE)" in common


def test_the_btree_check_sees_an_unconditional_link():
    """Negative control: the unpatched line is reported."""
    text = ("if(NOT CMAKE_BUILD_EARLY_EXPANSION)\n  set(MICROPY_PY_BTREE ON)\nendif()\n"
            "target_link_libraries(${MICROPY_TARGET} micropy_extmod_btree)\n")
    assert _conditions_of(text, r"target_link_libraries\(.*micropy_extmod_btree") == [[]]


# -- the ESP32-C3 board ---------------------------------------------------------------------

def _board_cmake(board: Path, tmp_path: Path) -> dict[str, str]:
    """Evaluate a board's mpconfigboard.cmake as the port's CMakeLists.txt includes it."""
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed to evaluate mpconfigboard.cmake (Debian: apt install cmake)")
    work = tmp_path / board.name
    work.mkdir()
    script = work / "probe.cmake"
    script.write_text(f'set(MICROPY_BOARD_DIR "{board}")\n'
                      f'set(CMAKE_BINARY_DIR "{work}")\n'
                      f'include("{board}/mpconfigboard.cmake")\n'
                      'message("IDF_TARGET=${IDF_TARGET}")\n'
                      'message("SDKCONFIG_DEFAULTS=${SDKCONFIG_DEFAULTS}")\n'
                      'message("MICROPY_FROZEN_MANIFEST=${MICROPY_FROZEN_MANIFEST}")\n')
    proc = subprocess.run(["cmake", "-P", str(script)], cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split("=", 1) for line in proc.stderr.splitlines() if "=" in line)
    values["partitions"] = (work / "sdkconfig.partitions").read_text()
    return values


def test_c3_board_is_the_generic_c3_plus_the_shared_token_files(tmp_path):
    _need_port()
    c3 = _board_cmake(C3, tmp_path)
    esp32 = _board_cmake(ESP32, tmp_path)
    assert c3["IDF_TARGET"] == "esp32c3" and esp32["IDF_TARGET"] == ""
    # the port's fragments exactly as ESP32_GENERIC_C3 lists them, then the shared ones
    generic = (PORT / "boards" / "ESP32_GENERIC_C3" / "mpconfigboard.cmake").read_text()
    port_fragments = re.search(r"set\(SDKCONFIG_DEFAULTS\s+(.*?)\)", generic, re.S).group(1).split()
    assert "set(IDF_TARGET esp32c3)" in generic
    defaults = c3["SDKCONFIG_DEFAULTS"].split(";")
    assert defaults[:len(port_fragments)] == port_fragments
    shared = [d for d in esp32["SDKCONFIG_DEFAULTS"].split(";") if d.startswith("/")]
    assert defaults[len(port_fragments)] == f"{ESP32}/sdkconfig.board" == shared[0]
    assert defaults[len(port_fragments) + 1].endswith("/sdkconfig.partitions")
    assert len(defaults) == len(port_fragments) + 2
    for d in defaults[:len(port_fragments)]:
        assert (PORT / d).exists(), d
    assert c3["partitions"] == esp32["partitions"] == \
        f'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="{ESP32}/partitions.csv"\n'
    assert c3["MICROPY_FROZEN_MANIFEST"] == esp32["MICROPY_FROZEN_MANIFEST"] == f"{ESP32}/manifest.py"


def test_c3_board_copies_nothing():
    files = sorted(p.name for p in C3.iterdir())
    assert files == ["mpconfigboard.cmake", "mpconfigboard.h", "partitions.csv"]
    # partitions.csv is there for the tools that read <board>/partitions.csv (make flash,
    # build.sh): a link to the one table
    assert (C3 / "partitions.csv").is_symlink()
    assert (C3 / "partitions.csv").resolve() == (ESP32 / "partitions.csv").resolve()
    h = (C3 / "mpconfigboard.h").read_text()
    assert '#define MICROPY_HW_MCU_NAME "ESP32C3"' in h and "PKCS#11 token" in h
    assert "#define MICROPY_HW_ENABLE_UART_REPL (1)" in h


def _record_idf_args(tmp_path: Path) -> tuple[dict[str, str], Path]:
    record = tmp_path / "idf-args.txt"
    env = _fake_idf(tmp_path, f'printf "%s\\n" "$@" > {record}\npwd >> {record}\nexit 1\n')
    return env, record


def test_make_esp32_board_c3_builds_the_c3_board(tmp_path):
    _need_port()
    env, record = _record_idf_args(tmp_path)
    proc = _make("esp32", "BOARD=ESP32_C3_PKCS11", f"BUILD={BUILD}", env=env)
    assert proc.returncode != 0
    assert "esp32c3 firmware (boards/ESP32_C3_PKCS11)" in proc.stdout
    args = record.read_text().splitlines()
    assert args[args.index("MICROPY_BOARD_DIR=" + str(C3)) - 1] == "-D"
    assert "MICROPY_BOARD=ESP32_C3_PKCS11" in args
    assert f"-DUSER_C_MODULES={ROOT}/firmware/cmodule/micropython.cmake" in args
    assert "-DMICROPY_PY_BTREE=OFF" in args
    assert args[args.index("-B") + 1] == str(BUILD / "esp32c3")
    assert args[-1] == str(PORT)
    # no JOBS given: ninja's own parallelism; JOBS=1 caps the compile and link jobs
    assert not [a for a in args if "JOB_POOL" in a]
    proc = _make("esp32", "BOARD=ESP32_C3_PKCS11", f"BUILD={BUILD}", "JOBS=1", env=env)
    args = record.read_text().splitlines()
    assert "-DCMAKE_JOB_POOLS=jobs=1" in args and "-DCMAKE_JOB_POOL_COMPILE=jobs" in args


def test_make_esp32_names_the_boards_for_an_unknown_board(tmp_path):
    env, record = _record_idf_args(tmp_path)
    proc = _make("esp32", "BOARD=ESP32_NOPE", f"BUILD={tmp_path / 'b'}", env=env)
    assert proc.returncode == 2
    assert "BOARD=ESP32_PKCS11" in proc.stdout and "BOARD=ESP32_C3_PKCS11" in proc.stdout
    assert not record.exists() and not (tmp_path / "b").exists()


# -- make flash for each board ----------------------------------------------------------------

def _fake_esptool(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "esptool-calls.txt"
    return _executable(tmp_path / "esptool", f'#!/bin/sh\necho "$@" >> {record}\n'), record


def _fake_build(tmp_path: Path, chip_dir: str) -> Path:
    b = tmp_path / "build"
    out = b / chip_dir
    (out / "bootloader").mkdir(parents=True)
    (out / "partition_table").mkdir(parents=True)
    (out / "micropython.bin").write_bytes(b"\xe9" * 1_500_000)
    (out / "bootloader" / "bootloader.bin").write_bytes(b"\xe9" * 100)
    (out / "partition_table" / "partition-table.bin").write_bytes(b"\xaa" * 100)
    # the venv target is satisfied by stamps newer than what it depends on
    (b / "venv").mkdir()
    now = max(os.path.getmtime(ROOT / f) for f in
              ("pyproject.toml", "firmware/requirements-host.txt", "firmware/install-deps.sh")) + 10
    for stamp in (b / ".deps-apt", b / "venv" / ".installed"):
        stamp.touch()
        os.utime(stamp, (now, now))
    return b


@pytest.mark.parametrize("board, chip, build_dir, boot", [
    ("ESP32_PKCS11", "esp32", "esp32", "0x1000"),
    ("ESP32_C3_PKCS11", "esp32c3", "esp32c3", "0x0"),
])
def test_make_flash_uses_the_boards_chip_and_bootloader_offset(tmp_path, board, chip, build_dir, boot):
    tool, record = _fake_esptool(tmp_path)
    b = _fake_build(tmp_path, build_dir)
    out = b / build_dir
    proc = _make("flash", f"BOARD={board}", f"BUILD={b}", f"ESPTOOL={tool}", "PORT=/dev/ttyACM3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert record.read_text().splitlines() == [
        f"--chip {chip} --port /dev/ttyACM3 --baud 460800 write-flash 0x10000 {out}/micropython.bin"]
    assert f"boards/{board}" in proc.stdout and "kept" in proc.stdout
    record.unlink()
    proc = _make("flash", f"BOARD={board}", f"BUILD={b}", f"ESPTOOL={tool}", "PORT=/dev/ttyACM3", "FULL=1",
                 "ERASE_TOKEN=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [c.split() for c in record.read_text().splitlines()]
    assert calls[0] == ["--chip", chip, "--port", "/dev/ttyACM3", "--baud", "460800", "write-flash",
                        boot, f"{out}/bootloader/bootloader.bin",
                        "0x8000", f"{out}/partition_table/partition-table.bin",
                        "0x10000", f"{out}/micropython.bin"]
    assert calls[1][:2] == ["--chip", chip] and calls[1][-3:] == ["erase-region", "0x3E0000", "0x20000"]
    assert f"bootloader -> {boot}" in proc.stdout and f"boards/{board}" in proc.stdout


def test_make_flash_names_the_board_whose_build_is_missing(tmp_path):
    tool, record = _fake_esptool(tmp_path)
    b = _fake_build(tmp_path, "esp32")          # an ESP32 build only
    proc = _make("flash", "BOARD=ESP32_C3_PKCS11", f"BUILD={b}", f"ESPTOOL={tool}", "PORT=/dev/ttyACM3")
    assert proc.returncode != 0
    assert f"{b}/esp32c3/micropython.bin is missing" in proc.stdout
    assert "make esp32 BOARD=ESP32_C3_PKCS11" in proc.stdout
    assert not record.exists()


# -- a changed board fragment reaches an existing build -----------------------------------

def test_a_changed_sdkconfig_fragment_reaches_an_existing_build(tmp_path):
    """ESP-IDF makes sdkconfig from the fragments once and keeps it afterwards: turning
    TLS 1.3 on in sdkconfig.board left an existing ESP32-C3 build at TLS 1.2, and a build
    of another C3 board in the same folder kept that board's options (both seen with
    build.sh). `make esp32` removes an sdkconfig older than any fragment or made for
    another board (ESP-IDF then makes it again) and keeps one that is current."""
    _need_port()
    seen = tmp_path / "sdkconfig-seen.txt"
    out = tmp_path / "esp32c3"
    out.mkdir()
    sdkconfig = out / "sdkconfig"
    env = _fake_idf(tmp_path, f'if [ -f {sdkconfig} ]; then echo kept > {seen}; else echo made > {seen}; fi\n'
                              'exit 1\n')

    def build() -> str:
        _make("esp32", f"BUILD={BUILD}", "BOARD=ESP32_C3_PKCS11", f"ESP32_BUILD={out}", env=env)
        return seen.read_text().strip()

    fragment = ESP32 / "sdkconfig.board"
    sdkconfig.write_text("# CONFIG_MBEDTLS_SSL_PROTO_TLS1_3 is not set\n")
    (out / "sdkconfig.board").write_text(f"{C3}\n")                  # made for this board
    old = fragment.stat().st_mtime - 3600
    os.utime(sdkconfig, (old, old))
    assert build() == "made"
    sdkconfig.write_text("CONFIG_MBEDTLS_SSL_PROTO_TLS1_3=y\n")    # newer than every fragment
    assert build() == "kept"
    # made for another board of the same chip (one build folder per chip): made again
    (out / "sdkconfig.board").write_text(str(ROOT / "boards" / "SOME_OTHER_C3_BOARD") + "\n")
    sdkconfig.write_text("CONFIG_NVS_ENCRYPTION=y\n")
    assert build() == "made"
    assert (out / "sdkconfig.board").read_text().strip() == str(C3)
