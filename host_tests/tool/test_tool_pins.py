"""A locked user PIN has a way out that keeps the keys: the SO sets a new user PIN
(C_InitPIN, `p11board init-pin` / `unlock`). Wrong tries say how many are left
(CKF_USER_PIN_COUNT_LOW / FINAL_TRY) and the limit (10)."""

from __future__ import annotations

import json
import re

SO = "so-secret-1"
USER = "user-1234"


def _labels(tool, pin: str) -> list[str]:
    return [o["label"] for o in json.loads(tool("list", "--json", "--pin", pin).stdout)["objects"]]


def test_locked_user_pin_is_unlocked_by_the_so_and_the_key_stays(tool_unix, seed_files):
    tool_unix("init-token", "--so-pin", SO, "--user-pin", USER, "-y")
    tool_unix("import-key", str(seed_files.key), "--pin", USER)
    assert "Device Priv TLS Key" in _labels(tool_unix, USER)

    r = tool_unix("list", "--pin", "wrong-1", expect=1)
    assert "CKR_PIN_INCORRECT" in r.stderr
    assert "locks after 10 wrong tries in a row" in r.stderr, r.stderr
    for i in range(2, 10):
        r = tool_unix("list", "--pin", f"wrong-{i}", expect=1)
    assert "ONE try left" in r.stderr, r.stderr              # 9 wrong: CKF_USER_PIN_FINAL_TRY
    tool_unix("list", "--pin", "wrong-10", expect=1)
    r = tool_unix("list", "--pin", USER, expect=1)          # the right PIN no longer opens it
    assert "CKR_PIN_LOCKED" in r.stderr and "init-pin" in r.stderr, r.stderr
    assert "user PIN is locked (10 wrong tries in a row)" in r.stderr, r.stderr

    r = tool_unix("init-pin", "--so-pin", "not-the-so-pin", "--new-pin", "x-5678", expect=1)
    assert "CKR_PIN_INCORRECT" in r.stderr and "SO PIN" in r.stderr, r.stderr
    r = tool_unix("unlock", "--so-pin", SO, "--new-pin", "user-5678")
    assert "it was locked" in r.stderr and "keys and certificates kept" in r.stderr, r.stderr
    tool_unix("list", "--pin", USER, expect=1)
    assert "Device Priv TLS Key" in _labels(tool_unix, "user-5678")
    info = json.loads(tool_unix("info", "--json", "--pin", "user-5678").stdout)
    assert "user-pin-locked" not in json.dumps(info)


def test_first_set_pin_says_set_not_changed(tool_unix):
    r = tool_unix("set-pin", "--old-pin", "", "--new-pin", USER)
    assert "user PIN set (the token had none)" in r.stderr, r.stderr
    r = tool_unix("set-pin", "--old-pin", USER, "--new-pin", "user-9999", "--pin", USER)
    assert "user PIN changed" in r.stderr, r.stderr


def test_pin_dash_without_a_terminal_exits_6_without_a_traceback(tool_unix):
    r = tool_unix("list", "--pin", "-", expect=6)
    assert "Traceback" not in r.output and "no terminal" in r.stderr, r.output


def _on_a_terminal(tool, *args: str, answer: str) -> tuple[int, str]:
    """Runs the CLI with a pty as its terminal; answers the first 'user PIN:' prompt
    with `answer`. Returns (exit code, everything the terminal showed)."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    from harness.paths import BUILD, ROOT

    master, slave = pty.openpty()
    env = dict(os.environ, BUILD=str(BUILD), PYTHONPATH=str(ROOT / "tools"))
    env.pop("P11BOARD_PIN", None)
    proc = subprocess.Popen([sys.executable, "-m", "p11board.cli", *tool.board_args, *args],
                            cwd=tool.cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    seen, answered = b"", False
    end = time.monotonic() + 300
    try:
        while time.monotonic() < end:
            if select.select([master], [], [], 1)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:         # the CLI exited and closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if not answered and b"the token's user PIN: " in seen:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        return proc.wait(60), seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_a_command_that_needs_the_pin_asks_for_it_on_a_terminal(tool_unix, seed_files):
    """No --pin, no P11BOARD_PIN: on a terminal the CLI asks (the PIN is not echoed and
    never in argv); without a terminal it says how to give it, as before."""
    tool_unix("set-pin", "--old-pin", "", "--new-pin", USER)
    rc, screen = _on_a_terminal(tool_unix, "import-key", str(seed_files.key), answer=USER)
    assert rc == 0, screen
    assert "the token's user PIN: " in screen and USER not in screen, screen
    assert "Device Priv TLS Key" in _labels(tool_unix, USER)
    rc, screen = _on_a_terminal(tool_unix, "show", "Device Priv TLS Key", answer=USER)
    assert rc == 0 and re.search(r"CKA_CLASS +private-key", screen), screen
    rc, screen = _on_a_terminal(tool_unix, "show", "Device Priv TLS Key", answer="wrong-1")
    assert rc == 1 and "CKR_PIN_INCORRECT" in screen, screen
    # without a terminal: no prompt, the same clear failure as before
    r = tool_unix("show", "Device Priv TLS Key", expect=5)
    assert "user PIN" in r.stderr and "--pin" in r.stderr, r.stderr
