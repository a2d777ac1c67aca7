"""mpremote drives the unix firmware like a board (raw REPL patch)."""

import subprocess
import time


def test_mpremote_exec_and_soft_reset_forgets_globals(unix_pty):
    assert unix_pty.exec("x = 41\nprint(x + 1)").strip() == "42"
    # A new mpremote session soft-resets: globals and imported modules are fresh.
    assert unix_pty.exec("print('x' in globals())").strip() == "False"


def test_mpremote_run_and_fs_cp_round_trip(unix_pty, tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import sys\nprint('ran on', sys.implementation._build)\n")
    assert unix_pty.mpremote("run", str(script)).stdout.strip() == "ran on unix"

    payload = bytes(range(256)) * 128  # 32 KB, every byte value
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    remote = unix_pty.work_dir / "copied.bin"
    unix_pty.mpremote("fs", "cp", str(src), f":{remote}")
    back = tmp_path / "back.bin"
    unix_pty.mpremote("fs", "cp", f":{remote}", str(back))
    assert remote.read_bytes() == payload
    assert back.read_bytes() == payload


def test_firmware_exits_when_the_pty_closes(unix_pty):
    unix_pty.exec("print(1)")
    child = subprocess.run(["pgrep", "-P", str(unix_pty._proc.pid)], capture_output=True, text=True)
    pids = child.stdout.split()
    assert pids, "socat should have a micropython child"
    unix_pty.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and subprocess.run(["kill", "-0", pids[0]], capture_output=True).returncode == 0:
        time.sleep(0.05)
    assert subprocess.run(["kill", "-0", pids[0]], capture_output=True).returncode != 0
