"""The emulated Cortex-M3 board's token through p11-kit-proxy.so and
`p11bridge serve` on its UART: pkcs11-tool, OpenSSL's engine, a restart in the
middle of a session, and what one C_Sign costs over the serial line."""

from __future__ import annotations

import statistics
import subprocess
import time

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


def test_qemu_sign_round_trip_cost(qemu_board, capsys) -> None:
    """One C_Sign over the UART costs the signature plus < 20 ms: per sample, the
    host's round trip against the board's own clock around the same C_Sign."""
    qemu_board.wait_for_log(">>> ")
    link = Link(str(qemu_board.pty), timeout=60, lock_wait=0)
    link.open()
    try:
        assert link.call("C_Initialize")[0] == 0
        h = link.call("C_OpenSession", 0, 6)[1]
        rv, keys = link.call("C_GenerateKeyPair", h, 0x1040, [(0x180, P256)], [(3, b"k")])
        key = keys[1]       # type: ignore[index]
        over, board, trip = [], [], []
        for _ in range(9):
            assert link.call("C_SignInit", h, 0x1041, key)[0] == 0
            t = time.perf_counter()
            rv, sig = link.call("C_Sign", h, b"x" * 32)
            rtt = time.perf_counter() - t
            assert rv == 0 and len(sig) == 64   # type: ignore[arg-type]
            on_board = link.board_time()
            over.append(rtt - on_board)
            board.append(on_board)
            t = time.perf_counter()
            assert link.call("C_GetSessionInfo", h)[0] == 0
            trip.append(time.perf_counter() - t)
        link.call("C_Finalize")
    finally:
        link.close()
    ms = [statistics.median(x) * 1000 for x in (board, over, trip)]
    with capsys.disabled():
        print(f"\n[bridge qemu] C_Sign: {ms[0]:.1f} ms on the board + {ms[1]:.1f} ms for the "
              f"bridge and UART; C_GetSessionInfo round trip {ms[2]:.1f} ms (medians of 9)")
    assert ms[1] < 20
