"""Finding 10 (issue 10): on a filesystem without rename-over (FAT), a power
cut inside the fallback replace of the token record must not leave a token
without its record (the old code removed token.rec before the rename)."""

from __future__ import annotations

from harness.token_files import P11_PRELUDE, last_json

FAT_OS = """
import os as _real, sys
from pkcs11 import store
class FatOS:
    # rename() refuses an existing target, like FAT; the second rename of the
    # token record's temp file is where the power fails
    def __init__(self):
        self.tries = 0
    def __getattr__(self, n):
        return getattr(_real, n)
    def rename(self, a, b):
        try:
            _real.stat(b)
            raise OSError(17)
        except OSError as e:
            if e.args[0] == 17:
                raise
        if CUT and a.endswith("token.rec.tmp"):
            self.tries += 1
            if self.tries == 1:
                print("power cut before", a, "->", b)
                sys.exit(3)
        _real.rename(a, b)
store.os = FatOS()
"""


def test_cut_during_fat_replace_of_the_token_record_keeps_the_pin(unix_fw) -> None:
    unix_fw.run(P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_PRIVATE, True),
                       (CKA_LABEL, b"secret"), (CKA_VALUE, b"v")])
p11.C_SetPIN(h, b"", b"user-pin")
""")
    script = unix_fw.work_dir / "cut.py"
    script.write_text(P11_PRELUDE + FAT_OS.replace("CUT", "True") + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_Login(h, CKU_USER, b"wrong-pin")
""")
    proc = unix_fw.run_file(script, check=False)
    assert proc.returncode == 3 and "power cut before" in proc.stdout
    res = last_json(unix_fw.run(P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"secret")])
found = p11.C_FindObjects(h, 5)
p11.C_FindObjectsFinal(h)
R = {"login_required": p11.C_GetTokenInfo(0)["flags"] & CKF_LOGIN_REQUIRED != 0, "found_without_login": found,
     "login": ckr(p11.C_Login, h, CKU_USER, b"user-pin"), "corrupted": p11.corrupted_objects()}
print(json.dumps(R))
"""))
    assert res == {"login_required": True, "found_without_login": [], "login": "OK", "corrupted": []}
    assert not list(unix_fw.token_dir.glob("*.old"))
