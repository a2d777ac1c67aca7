"""Finding 5 (issue 10): the wrong-PIN counter survives a power cut at every
write of a login attempt, and a right and a wrong PIN make the same writes.

The store's fault hook (pkcs11.store.fault) is called after each temp-file
write ("tmp") and after each rename ("renamed"); SystemExit there is a power cut
that skips all cleanup.  The PIN hash function is wrapped to record whether the
check ran before the cut: whenever it ran, the next boot must see the attempt
counted."""

from __future__ import annotations

import json

import pytest

from harness.token_files import P11_PRELUDE, last_json

BASE = P11_PRELUDE + """
import sys
from pkcs11 import store, config
from pkcs11 import token as _tok
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
def fails():
    m = store.Store(config.token_dir()).load_meta()
    return m.get(8, 0)
"""

PREPARE = BASE + """
p11.C_SetPIN(h, b"", b"right-pin")
print(ckr(p11.C_Login, h, CKU_USER, b"wrong-1"))
print(json.dumps({"fails": fails()}))
"""

# cut the N-th store event (0-based) of one login attempt
CUT = BASE + """
events = []
checked = []
_orig_hash = _tok.Token._hash_pin
def _hash(self, *a):
    checked.append(1)
    return _orig_hash(self, *a)
_tok.Token._hash_pin = _hash
def fault(stage, name):
    events.append(stage)
    if len(events) - 1 == CUT_AT:
        print(json.dumps({"cut": stage, "checked": bool(checked)}))
        sys.exit(3)
store.fault = fault
r = ckr(p11.C_Login, h, CKU_USER, PIN)
print(json.dumps({"cut": None, "events": events, "result": r, "checked": bool(checked)}))
"""

AFTER = BASE + """
print(json.dumps({"fails": fails()}))
"""


def _attempt(unix_fw, pin: bytes, cut_at: int):
    code = CUT.replace("CUT_AT", str(cut_at)).replace("PIN", repr(pin))
    script = unix_fw.work_dir / "cut.py"
    script.write_text(code)
    proc = unix_fw.run_file(script, check=False)
    return proc.returncode, last_json(proc.stdout)


def test_right_and_wrong_pin_make_the_same_writes(unix_fw) -> None:
    assert last_json(unix_fw.run(PREPARE)) == {"fails": 1}
    _, wrong = _attempt(unix_fw, b"wrong-2", 10_000)
    _, right = _attempt(unix_fw, b"right-pin", 10_000)
    assert wrong["result"] == "PIN_INCORRECT" and right["result"] == "OK"
    assert wrong["events"] and wrong["events"] == right["events"]
    # and the same again when the counter starts at zero
    _, right0 = _attempt(unix_fw, b"right-pin", 10_000)
    assert right0["events"] == wrong["events"]


@pytest.mark.parametrize("pin", [b"wrong-2", b"right-pin"])
def test_power_cut_at_every_write_of_a_login_never_gives_a_free_guess(unix_fw, pin) -> None:
    assert last_json(unix_fw.run(PREPARE)) == {"fails": 1}
    _, full = _attempt(unix_fw, pin, 10_000)
    n = len(full["events"])
    assert n >= 2
    # undo the full attempt's effect on the counter for the cut runs: start again
    tried = 0
    for cut_at in range(n):
        for p in [*unix_fw.token_dir.iterdir(), *unix_fw.token_dir.parent.glob("token.key*")]:
            p.unlink()
        assert last_json(unix_fw.run(PREPARE)) == {"fails": 1}
        rc, info = _attempt(unix_fw, pin, cut_at)
        assert rc == 3 and info["cut"] is not None
        after = last_json(unix_fw.run(AFTER))["fails"]
        tried += 1
        if info["checked"] and pin != b"right-pin":
            # a wrong PIN was compared before the cut: that guess is counted
            assert after == 2, (cut_at, info, after)
        elif info["checked"]:
            # a right PIN: counted until the success is on flash, then cleared
            assert after in (0, 2), (cut_at, info, after)
        else:
            assert after in (1, 2), (cut_at, info, after)
    assert tried == n
