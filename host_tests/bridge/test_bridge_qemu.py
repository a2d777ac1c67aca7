"""The emulated Cortex-M3 board's token through p11-kit-proxy.so and
`p11bridge serve` on its UART: pkcs11-tool, OpenSSL's engine, a restart in the
middle of a session, and what one C_Sign costs over the serial line."""

from __future__ import annotations

import subprocess

import pytest

from harness.bridge import BridgeClient, bridge_qemu  # noqa: F401 (the fixture)
from p11bridge.link import Link

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

LABEL = "Device Priv TLS Key"
KEY_URI = "pkcs11:object=Device%20Priv%20TLS%20Key;type=private"
P256 = bytes.fromhex("06082a8648ce3d030107")


def test_qemu_board_with_pkcs11_tool_and_openssl(bridge_qemu: BridgeClient) -> None:
    c = bridge_qemu
    out = c.run("pkcs11-tool", "--module", c.proxy, "-L").stdout.decode()
    assert "token label        : MicroPython PKCS#11 token" in out
    c.tool("--keypairgen", "--key-type", "EC:prime256v1", "--label", LABEL, "--id", "01")
    csr = c.home / "board.csr"
    c.run("openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine", "-key", KEY_URI,
          "-subj", "/CN=qemu-board", "-out", str(csr))
    verify = subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-verify"],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    der = c.home / "pub.der"
    c.tool("--read-object", "--type", "pubkey", "--id", "01", "-o", str(der))
    pub = subprocess.run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", str(der)],
                         check=True, capture_output=True).stdout
    assert subprocess.run(["openssl", "req", "-in", str(csr), "-noout", "-pubkey"],
                          check=True, capture_output=True).stdout == pub


def test_qemu_board_restart_mid_session(bridge_qemu: BridgeClient, qemu_board) -> None:
    from test_bridge_unix import HOLD_SESSION

    c = bridge_qemu
    c.tool("--keypairgen", "--key-type", "EC:prime256v1", "--label", LABEL, "--id", "01")
    client = c.spawn_python(HOLD_SESSION)
    try:
        client.expect("signed 64", timeout=120)
        qemu_board.restart()            # reset: the serial line drops and the board reboots
        client.send("sign again")
        assert client.expect("error", timeout=60) == "error DeviceRemoved"
        client.wait(30)
    finally:
        client.stop()
    # the restarted board serves the next application, key still on its flash
    qemu_board.wait_for_log(">>> ", start=0)
    assert f"label:      {LABEL}" in c.tool("-O", "--type", "privkey")


def test_qemu_sign_repeats_and_board_clock(qemu_board) -> None:
    """Nine C_Sign calls in a row over the UART, each verified against the public key,
    and the bridge's time op reports the board's own time for each call. What a call
    costs is measured by `make bench` (row 5, bench/compare.py), not asserted here."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

    qemu_board.wait_for_log(">>> ")
    link = Link(str(qemu_board.pty), timeout=120, lock_wait=0)
    link.open()
    try:
        assert link.call("C_Initialize")[0] == 0
        h = link.call("C_OpenSession", 0, 6)[1]
        rv, keys = link.call("C_GenerateKeyPair", h, 0x1040, [(0x180, P256)], [(3, b"k")])
        assert rv == 0, rv
        pub_key, key = keys     # type: ignore[misc]
        rv, attrs = link.call("C_GetAttributeValue", h, pub_key, [0x181])
        assert rv == 0, rv
        point = attrs[0]        # type: ignore[index]
        # CKA_EC_POINT is a DER OCTET STRING around the uncompressed point
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[-65:])
        for i in range(9):
            digest = bytes([i]) * 32
            assert link.call("C_SignInit", h, 0x1041, key)[0] == 0
            rv, sig = link.call("C_Sign", h, digest)
            assert rv == 0 and len(sig) == 64, (rv, sig)     # type: ignore[arg-type]
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"),  # type: ignore[index]
                                       int.from_bytes(sig[32:], "big"))  # type: ignore[index]
            pub.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            assert link.board_time() > 0
        assert link.call("C_Finalize")[0] == 0
    finally:
        link.close()
