"""The ESP32 path of the device key (pkcs11.devkey): with an `esp32` module that
has NVS, the secret and the rollback counter live in NVS namespace "pkcs11"
(blob "devkey", i32 "gen"), nothing is written beside the token directory, and
a token made that way works across restarts.  A fake NVS with the esp32 port's
method names and errors (OSError for a missing key) stands in on unix."""

from __future__ import annotations

from harness.token_files import P11_PRELUDE, last_json

FAKE = """
import sys
class NVS:
    store = {}
    def __init__(self, ns):
        self.ns = ns
        self.d = NVS.store.setdefault(ns, {})
        NVS.commits = getattr(NVS, "commits", 0)
    def get_blob(self, k, buf):
        if k not in self.d:
            raise OSError(-4354)    # ESP_ERR_NVS_NOT_FOUND
        v = self.d[k]
        buf[:len(v)] = v
        return len(v)
    def set_blob(self, k, v):
        self.d[k] = bytes(v)
    def get_i32(self, k):
        if k not in self.d:
            raise OSError(-4354)
        return self.d[k]
    def set_i32(self, k, v):
        self.d[k] = v
    def commit(self):
        NVS.commits += 1
class _M:
    pass
esp32 = _M()
esp32.NVS = NVS
sys.modules["esp32"] = esp32
"""


def test_device_key_and_counter_in_nvs(unix_fw) -> None:
    res = last_json(unix_fw.run(FAKE + P11_PRELUDE + """
from pkcs11 import devkey
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
d = p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_PRIVATE, True),
                           (CKA_LABEL, b"x"), (CKA_VALUE, b"secret-value")])
p11.C_SetPIN(h, b"", b"user-pin")
p11.C_Finalize()
nv = NVS.store["pkcs11"]
R = {"key_len": len(nv["devkey"]), "gen": nv["gen"], "commits": NVS.commits}
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
p11.C_Login(h, CKU_USER, b"user-pin")
R["value"] = p11.C_GetAttributeValue(h, d, [CKA_VALUE])[0].decode()
R["bad"] = p11.corrupted_objects()
R["gen_after_login"] = nv["gen"]
print(json.dumps(R))
"""))
    assert res["key_len"] == 32 and res["gen"] >= 2 and res["commits"] >= 2
    assert res["value"] == "secret-value" and res["bad"] == []
    assert res["gen_after_login"] == res["gen"] + 2      # a login writes the token record twice
    assert not list(unix_fw.token_dir.parent.glob("token.key*"))
