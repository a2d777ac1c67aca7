"""MQTT over TLS through the token (the mqtt package over p11tls) to Debian's mosquitto with
`require_certificate true` and `use_identity_as_username true`, on the unix firmware.

The broker's log must show the identity it took from the client certificate: the
certificate whose key only the token holds.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from harness.mosquitto import TLSListener

SUITES = {
    "sha256": ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
    "sha384": ("TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"),
}

ROUND_TRIP = """
import p11tls
from mqtt import MQTTClient
c = MQTTClient({cid!r}, p11tls.opener("127.0.0.1", {port}, server_hostname="localhost",
                                      ciphers=[{suite!r}]), keepalive=30)
c.connect()
c.subscribe("tls/{cid}/echo", qos=1)
c.publish("tls/{cid}/echo", b"signed in the token", qos=1)
m = c.wait_msg(10)
print("got", m and (bytes(m[0]), bytes(m[1])))
c.disconnect()
"""


@pytest.fixture
def broker(mosquitto_factory, local_ca):
    def start(openssl_cipher: str):
        server = local_ca.issue_server()
        return mosquitto_factory(plain=False, allow_anonymous=False, tls=TLSListener(
            cafile=local_ca.root_path, certfile=server.cert_path, keyfile=server.key_path,
            extra=["tls_version tlsv1.2", f"ciphers {openssl_cipher}"]))
    return start


@pytest.mark.parametrize("suite", ["sha256", "sha384"])
@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_mqtt_through_the_token(token_pki, broker, key_type, suite):
    cn = f"thing-{key_type}-{suite}"
    token_pki.add_identity(cn, key_type)
    token_pki.add_root()
    mosq = broker(SUITES[suite][1])
    cid = f"client-{key_type}"
    out = token_pki.fw.run(ROUND_TRIP.format(cid=cid, port=mosq.tls_port, suite=SUITES[suite][0]))
    assert f"got (b'tls/{cid}/echo', b'signed in the token')" in out, out
    # Identity from the certificate: the CN became the user name.
    line = mosq.wait_for_log(rf"New client connected from 127\.0\.0\.1:\d+ as {cid} .*u'{cn}'")[0]
    assert re.search(r"\(p2, c1, k30, u'" + cn + r"'\)", line), line
    token_pki.assert_no_secrets(out, mosq.log_text())


def test_broker_refuses_a_key_that_does_not_match(token_pki, broker):
    spare = token_pki.add_identity("spare", "ec", key_label="Spare Key", cert_label="Spare Cert")
    token_pki.add_identity("thing-mismatch", "ec", cert_key=spare.key)
    token_pki.add_root()
    mosq = broker(SUITES["sha256"][1])
    out = token_pki.fw.run(ROUND_TRIP.format(cid="mismatch", port=mosq.tls_port,
                                             suite=SUITES["sha256"][0]).replace(
        "c.connect()", "try:\n    c.connect()\nexcept Exception as e:\n    print('refused', e)\n"
                       "    raise SystemExit"))
    assert "refused" in out and "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE" in out, out
    # The broker's reason, even when it reset the link while the client was still
    # writing its handshake (it was an EPIPE in 3 runs of 5 before).
    assert "alert decrypt_error (51)" in out and "does the token key match" in out, out
    assert "New client connected" not in mosq.log_text()


def test_reconnect_after_broker_restart_signs_a_new_handshake(token_pki, broker):
    """Each connection the client opens through p11tls.opener() is a new handshake
    signed by the token (nothing from the first connection is reused)."""
    token_pki.add_identity("thing-again", "ec")
    token_pki.add_root()
    mosq = broker(SUITES["sha256"][1])
    fw = token_pki.fw
    (fw.work_dir / "go").write_text("")
    script = fw.work_dir / "reconnect.py"
    script.write_text(f"""
import os, time, p11tls
from mqtt import robust
c = robust.MQTTClient("again", p11tls.opener("127.0.0.1", {mosq.tls_port}, server_hostname="localhost"),
               keepalive=30, backoff=robust.Backoff(base=0.2, cap=1, attempts=50))
c.connect()
print("first")
os.remove("go")
while True:
    try:
        c.ping()
        c.wait_msg(0.2)
    except Exception as e:
        print("lost", type(e).__name__)
        break
c.reconnect()
c.subscribe("again/t", qos=1)
c.publish("again/t", b"after restart", qos=1)
m = c.wait_msg(10)
print("got", m and bytes(m[1]))
c.disconnect()
""")
    proc = subprocess.Popen([str(fw.binary), str(script)], cwd=fw.work_dir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={"PKCS11_TOKEN_DIR": str(fw.token_dir), "MICROPYPATH": ".frozen"})
    deadline = time.monotonic() + 30
    while (fw.work_dir / "go").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    mosq.restart(down_for=0.5)
    out, _ = proc.communicate(timeout=60)
    assert "first" in out and "lost" in out and "got b'after restart'" in out, out
    # Both connections (before and after the restart) authenticated by the token's key.
    mosq.wait_for_log(r"New client connected from .* as again .*u'thing-again'", count=2)


@pytest.fixture
def broker13(mosquitto_factory, local_ca):
    server = local_ca.issue_server()
    return mosquitto_factory(plain=False, allow_anonymous=False, tls=TLSListener(
        cafile=local_ca.root_path, certfile=server.cert_path, keyfile=server.key_path,
        extra=["tls_version tlsv1.3"]))


ROUND_TRIP_13 = ROUND_TRIP.replace(",\n                                      ciphers=[{suite!r}]", "")


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_mqtt_through_the_token_over_tls13(token_pki, broker13, key_type):
    cn = f"thing13-{key_type}"
    token_pki.add_identity(cn, key_type)
    token_pki.add_root()
    cid = f"client13-{key_type}"
    out = token_pki.fw.run(ROUND_TRIP_13.format(cid=cid, port=broker13.tls_port))
    assert f"got (b'tls/{cid}/echo', b'signed in the token')" in out, out
    broker13.wait_for_log(rf"New client connected from 127\.0\.0\.1:\d+ as {cid} .*u'{cn}'")
    token_pki.assert_no_secrets(out, broker13.log_text())


def test_broker_refusing_the_key_over_tls13_names_its_alert(token_pki, broker13):
    """TLS 1.3: the broker checks the CertificateVerify after the client's handshake is
    done, so its alert arrives while the client waits for CONNACK. The error must name
    it, not read as a bare mbedTLS code."""
    spare = token_pki.add_identity("spare", "ec", key_label="Spare Key", cert_label="Spare Cert")
    token_pki.add_identity("thing13-mismatch", "ec", cert_key=spare.key)
    token_pki.add_root()
    out = token_pki.fw.run(ROUND_TRIP_13.format(cid="mismatch13", port=broker13.tls_port).replace(
        "c.connect()", "try:\n    c.connect()\nexcept Exception as e:\n    print('refused', type(e).__name__, e)\n"
                       "    raise SystemExit"))
    assert "refused MQTTConnectionError" in out, out
    assert "the server sent alert decrypt_error (51)" in out and "does the token key match" in out, out
    assert "New client connected" not in broker13.log_text()
