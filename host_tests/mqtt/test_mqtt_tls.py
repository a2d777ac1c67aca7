"""The mqtt client over MicroPython's own TLS socket (non-blocking reads and
writes across TLS records, poll on a TLS socket) against mosquitto's TLS
listener. Client authentication through the token is covered by the TLS tests."""

from __future__ import annotations

import hashlib
import re
import textwrap

from harness.mosquitto import TLSListener, mp_prelude


def test_pubsub_big_payload_and_pings_over_tls(unix_fw, mosquitto_factory, local_ca):
    server = local_ca.issue_server(("localhost",))
    broker = mosquitto_factory(plain=False, tls=TLSListener(
        cafile=local_ca.root_path, certfile=server.cert_path, keyfile=server.key_path,
        require_certificate=False, use_identity_as_username=False))
    n = 100_000
    out = unix_fw.run(mp_prelude(broker.tls_port) + textwrap.dedent(f"""
        import tls, hashlib
        CA = {local_ca.root_der!r}
        def tls_conn():
            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = tls.CERT_REQUIRED
            ctx.load_verify_locations(CA)
            return ctx.wrap_socket(tcp(), server_hostname='localhost')
        lim = dict(mqtt.AWS_LIMITS, keepalive=(1, 1200))
        c = mqtt.MQTTClient('thing-tls', tls_conn, keepalive=1, limits=lim, options=mqtt.Options(max_rx={n}))
        print(c.connect())
        c.subscribe('tls/#', 1)
        c.publish('tls/small', b'over tls', qos=1)
        data = bytes(range(256)) * ({n} // 256)
        c.publish('tls/big', data, qos=1)
        seen = []
        while len(seen) < 2:
            t, m = c.wait_msg(10)
            seen.append((t, len(m), hashlib.sha256(m).digest().hex()))
        for s in sorted(seen):
            print(*s)
        print(c.wait_msg(2))
        c.disconnect()
    """), timeout=60)
    data = bytes(range(256)) * (n // 256)
    assert out.splitlines() == [
        "False",
        f"b'tls/big' {len(data)} {hashlib.sha256(data).hexdigest()}",
        f"b'tls/small' 8 {hashlib.sha256(b'over tls').hexdigest()}",
        "None",
    ]
    broker.wait_for_log(r"Received DISCONNECT from thing-tls")
    log = broker.log_text()
    assert re.search(r"New client connected from 127\.0\.0\.1:\d+ as thing-tls \(p2, c1, k1\)", log)
    assert len(re.findall(r"Received PINGREQ from thing-tls", log)) >= 2
