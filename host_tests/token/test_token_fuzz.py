"""Bad input never crashes the token and never damages what it stores: a
seeded random stream of malformed calls (wrong types, unknown attributes,
odd mechanisms and parameters, random handles) raises only PKCS11Error, and
afterwards every record still passes its integrity check and the provisioned
key still signs."""

from __future__ import annotations

import pytest

from harness.token_files import P11_PRELUDE, TokenKeys, last_json
from harness.device_json import snippet

FUZZ = P11_PRELUDE + snippet("token_fuzz")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_malformed_calls_only_raise_pkcs11_errors(unix_fw, token_keys: TokenKeys, seed: int) -> None:
    token_keys.copy_to(unix_fw.work_dir)
    res = last_json(unix_fw.run(f"SEED = {seed}\nN = 1500\n" + FUZZ))
    assert res["bad"] == {}
    assert res["still_signs"] is True and res["damaged"] == []
    assert len(res["codes"]) >= 12, res["codes"]      # the stream reached many different checks
    assert not list(unix_fw.token_dir.glob("*.tmp"))
