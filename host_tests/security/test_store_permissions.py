"""Finding 7 (issue 10): on the unix firmware the token directory is private to
its owner (0700) and every record in it is 0600, also for a directory that an
older version (or the user) created with looser permissions."""

from __future__ import annotations

import stat

from harness.token_files import P11_PRELUDE

SETUP = P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_LABEL, b"x"), (CKA_VALUE, b"v")])
p11.C_SetPIN(h, b"", b"1234")
p11.C_Finalize()
"""


def _mode(p) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_token_dir_0700_and_files_0600(unix_fw) -> None:
    unix_fw.token_dir.chmod(0o755)
    unix_fw.run(SETUP)
    files = list(unix_fw.token_dir.iterdir())
    assert files, "the token wrote records"
    assert _mode(unix_fw.token_dir) == 0o700
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_a_new_nested_token_dir_is_0700(unix_fw, tmp_path) -> None:
    root = tmp_path / "fresh" / "tok"
    unix_fw.run(SETUP, env={"PKCS11_TOKEN_DIR": str(root)})
    assert _mode(root) == 0o700
    assert all(_mode(f) == 0o600 for f in root.iterdir())


def test_existing_world_readable_records_are_tightened(unix_fw) -> None:
    unix_fw.run(SETUP)
    for f in unix_fw.token_dir.iterdir():
        f.chmod(0o644)
    unix_fw.token_dir.chmod(0o755)
    unix_fw.run(P11_PRELUDE + "p11.C_Initialize()\np11.C_Finalize()\n")
    assert _mode(unix_fw.token_dir) == 0o700
    assert all(_mode(f) == 0o600 for f in unix_fw.token_dir.iterdir())
