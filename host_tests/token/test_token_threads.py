"""Two threads x 10 rounds, each with its own session, as FreeRTOS's porting
test suite does: random, find the key/certificate/public key by label, read the
certificate, be refused the private value, sign and verify, create and destroy
objects.  Every round succeeds and no two objects ever share a handle."""

from __future__ import annotations

from harness.token_files import P11_PRELUDE, TokenKeys, last_json
from harness.device_json import snippet

THREADS = P11_PRELUDE + snippet("token_threads")


def test_two_threads_ten_rounds(unix_fw, token_keys: TokenKeys) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    res = last_json(unix_fw.run(THREADS))
    assert res["results"] == {"A": [True] * 10, "B": [True] * 10}
    assert len(res["created"]) == 20 and len(set(res["created"])) == 20
    assert res["left"] == 10
    assert len(list(unix_fw.token_dir.glob("*.obj"))) == 2 + 1 + 10
