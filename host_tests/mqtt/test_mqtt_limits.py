"""AWS IoT Core limits are enforced by the client before anything is sent, and
limits=None (or a relaxed copy of AWS_LIMITS) lifts them for other brokers."""

from __future__ import annotations

import textwrap

from harness.mosquitto import FakeBroker, mp_prelude

CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT = 1, 3, 8, 10, 14

TRY = """
opened = []
def counting_tcp():
    opened.append(1)
    return tcp()
def attempt(label, fn, *a, **kw):
    try:
        fn(*a, **kw)
        print(label, 'OK')
    except ValueError as e:
        print(label, type(e).__name__, e)
"""


def run(unix_fw, broker: FakeBroker, body: str) -> dict[str, str]:
    out = unix_fw.run(mp_prelude(broker.port) + TRY + textwrap.dedent(body))
    broker.wait_idle()
    result = {}
    for line in out.splitlines():
        label, _, rest = line.partition(" ")
        result[label] = rest
    return result


def test_constructor_limits_reject_before_connecting(unix_fw, fake_broker: FakeBroker):
    r = run(unix_fw, fake_broker, """
M = mqtt.MQTTClient
attempt('id129', M, 'x' * 129, counting_tcp)
attempt('id128', M, 'x' * 128, counting_tcp)
attempt('id_multibyte', M, '\u20ac' * 43, counting_tcp)
attempt('id_empty', M, '', counting_tcp)
attempt('id_badutf8', M, b'dev\\xc0\\xaf', counting_tcp)
attempt('id_nul', M, 'de\\x00v', counting_tcp)
attempt('ka29', M, 'dev', counting_tcp, keepalive=29)
attempt('ka30', M, 'dev', counting_tcp, keepalive=30)
attempt('ka1200', M, 'dev', counting_tcp, keepalive=1200)
attempt('ka1201', M, 'dev', counting_tcp, keepalive=1201)
attempt('ka0', M, 'dev', counting_tcp, keepalive=0)
attempt('pw_no_user', M, 'dev', counting_tcp, options=mqtt.Options(password=b'x'))
c = M('dev', counting_tcp)
attempt('will_qos2', c.set_last_will, 'w/t', b'x', qos=2)
attempt('will_wild', c.set_last_will, 'w/+', b'x')
attempt('will_big', c.set_last_will, 'w/t', bytes(65536))
print('opened', len(opened))
""")
    assert r.pop("opened") == "0"
    assert not fake_broker.connections
    ok = {"id128", "ka30", "ka1200"}
    assert {k for k, v in r.items() if v == "OK"} == ok
    assert r["id129"] == "MQTTLimitError client id is 129 bytes; limit 128"
    assert r["id_multibyte"] == "MQTTLimitError client id is 129 bytes; limit 128"
    assert r["id_empty"] == "MQTTLimitError client id must not be empty"
    assert r["id_badutf8"] == "MQTTLimitError client id is not well-formed UTF-8"
    assert r["id_nul"] == "MQTTLimitError client id contains U+0000"
    for k in ("ka29", "ka1201", "ka0"):
        assert r[k] == f"MQTTLimitError keep-alive {k[2:]} s is outside 30..1200 s"
    assert r["pw_no_user"] == "ValueError MQTT 3.1.1 allows a password only with a user name"
    assert r["will_qos2"].startswith("MQTTLimitError QoS 2 not supported")
    assert r["will_wild"] == "ValueError wildcards '+' and '#' are not allowed in a topic name"
    assert r["will_big"] == "MQTTLimitError payload is 65536 bytes; limit 65535"


def test_operation_limits_reject_before_sending(unix_fw, fake_broker: FakeBroker):
    r = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev', tcp)
c.connect()
P = c.publish
attempt('topic257', P, 'a' * 257, b'')
attempt('topic256', P, 'a' * 256, b'1')
attempt('slash8', P, 'a/b/c/d/e/f/g/h/i', b'')
attempt('slash7', P, 'a/b/c/d/e/f/g/h', b'2')
attempt('shadow7', P, '$aws/things/dev/shadow/name/s1/update/accepted', b'3')
attempt('shadow8', P, '$aws/things/dev/shadow/name/s1/update/accepted/x', b'')
attempt('ingest', P, '$aws/rules/my_rule/a/b/c/d/e/f/g/h', b'4')
attempt('ingest8', P, '$aws/rules/my_rule/a/b/c/d/e/f/g/h/i', b'')
attempt('ingest256', P, '$aws/rules/my_rule/' + 'i' * 256, b'5')
attempt('ingest257', P, '$aws/rules/my_rule/' + 'i' * 257, b'')
attempt('payload_max', P, 'p', bytes(131072))
attempt('payload_over', P, 'p', bytes(131073))
attempt('payload_str', P, 'p', '\u20ac' * 43691)
attempt('qos2', P, 'p', b'', qos=2)
attempt('wild_plus', P, 'a/+/b', b'')
attempt('wild_hash', P, 'a/#', b'')
attempt('empty', P, '', b'')
attempt('nul', P, 'a\\x00b', b'')
attempt('overlong', P, b'a/\\xc0\\xaf', b'')
attempt('surrogate', P, b'a/\\xed\\xa0\\x80', b'')
attempt('truncated', P, b'a/\\xe2\\x82', b'')
attempt('too_high', P, b'a/\\xf4\\x90\\x80\\x80', b'')
attempt('utf8_ok', P, 'a/\u03c0/\u20ac/\U0001f600', b'6')
S = c.subscribe
attempt('sub9', S, [('t/%d' % i, 0) for i in range(9)])
attempt('sub8', S, [('t/%d' % i, 0) for i in range(8)])
attempt('sub_qos2', S, 'x', 2)
attempt('sub_hash_mid', S, 'a/#/b')
attempt('sub_hash_glued', S, 'a/b#')
attempt('sub_plus_glued', S, 'a/b+/c')
attempt('sub_plus_glued2', S, '+a')
attempt('sub_slash8', S, '+/+/+/+/+/+/+/+/#')
attempt('sub_filters_ok', S, ['+', '#', '+/+/#', 'a/+', '/'])
attempt('sub_topic257', S, 'f' * 257)
attempt('unsub9', c.unsubscribe, ['t/%d' % i for i in range(9)])
attempt('unsub_bad', c.unsubscribe, 'a/#/b')
c.disconnect()
""")
    oks = {"topic256", "slash7", "shadow7", "ingest", "ingest256", "payload_max", "utf8_ok",
           "sub8", "sub_filters_ok"}
    assert {k for k, v in r.items() if v == "OK"} == oks, r
    assert r["topic257"] == "MQTTLimitError topic is 257 bytes; limit 256"
    assert r["slash8"] == r["shadow8"] == r["ingest8"] == "MQTTLimitError topic has 8 slashes; limit 7"
    assert r["ingest257"] == "MQTTLimitError topic is 257 bytes; limit 256"
    assert r["payload_over"] == "MQTTLimitError payload is 131073 bytes; limit 131072"
    assert r["payload_str"] == "MQTTLimitError payload is 131073 bytes; limit 131072"
    assert r["qos2"] == r["sub_qos2"] == "MQTTLimitError QoS 2 not supported (0 or 1; AWS IoT Core has no QoS 2)"
    assert r["wild_plus"] == r["wild_hash"] == "ValueError wildcards '+' and '#' are not allowed in a topic name"
    assert r["empty"] == "MQTTLimitError empty topic"
    assert r["nul"] == "MQTTLimitError topic contains U+0000"
    for k in ("overlong", "surrogate", "truncated", "too_high"):
        assert r[k] == "MQTTLimitError topic is not well-formed UTF-8", k
    assert r["sub9"] == "MQTTLimitError 9 topics in one SUBSCRIBE; allowed 1..8"
    assert r["unsub9"] == "MQTTLimitError 9 topics in one UNSUBSCRIBE; allowed 1..8"
    assert r["sub_hash_mid"] == r["sub_hash_glued"] == r["unsub_bad"] == \
        "ValueError '#' must be the last level of a topic filter, alone"
    assert r["sub_plus_glued"] == r["sub_plus_glued2"] == "ValueError '+' must fill a whole topic filter level"
    assert r["sub_slash8"] == "MQTTLimitError topic has 8 slashes; limit 7"
    assert r["sub_topic257"] == "MQTTLimitError topic is 257 bytes; limit 256"
    # Exactly the accepted operations reached the broker, in order.
    pkts = fake_broker.connections[0].packets
    assert [p.type for p in pkts] == [CONNECT] + [PUBLISH] * 7 + [SUBSCRIBE] * 2 + [DISCONNECT]
    topics = [p.publish_fields()[0] for p in pkts if p.type == PUBLISH]
    assert topics == [b"a" * 256, b"a/b/c/d/e/f/g/h", b"$aws/things/dev/shadow/name/s1/update/accepted",
                      b"$aws/rules/my_rule/a/b/c/d/e/f/g/h", b"$aws/rules/my_rule/" + b"i" * 256, b"p",
                      "a/\u03c0/\u20ac/\U0001f600".encode()]
    assert len(pkts[6].publish_fields()[2]) == 131072


def test_limits_none_and_relaxed_copy(unix_fw, fake_broker: FakeBroker):
    r = run(unix_fw, fake_broker, """
M = mqtt.MQTTClient
attempt('ka0', M, 'dev', tcp, keepalive=0, limits=None)
attempt('id200', M, 'x' * 200, tcp, limits=None)
attempt('id_empty_clean', M, '', tcp, limits=None)
attempt('id_empty_persistent', M, '', tcp, limits=None, options=mqtt.Options(clean_session=False))
attempt('ka5_relaxed', M, 'dev', tcp, keepalive=5, limits=dict(mqtt.AWS_LIMITS, keepalive=(1, 60)))
attempt('ka61_relaxed', M, 'dev', tcp, keepalive=61, limits=dict(mqtt.AWS_LIMITS, keepalive=(1, 60)))
c = M('dev', tcp, limits=None, keepalive=0)
c.connect()
attempt('slash10', c.publish, '/'.join('abcdefghijk'), b'')
attempt('topic300', c.publish, 't' * 300, b'')
attempt('payload200k', c.publish, 'p', bytes(200000))
attempt('sub9', c.subscribe, ['t/%d' % i for i in range(9)])
attempt('qos2', c.publish, 'p', b'', qos=2)
c.disconnect()
""")
    assert r.pop("ka61_relaxed") == "MQTTLimitError keep-alive 61 s is outside 1..60 s"
    assert r.pop("id_empty_persistent") == "MQTTLimitError client id must not be empty"
    assert r.pop("qos2").startswith("MQTTLimitError QoS 2 not supported")
    assert set(r.values()) == {"OK"}, r
    pkts = fake_broker.connections[0].packets
    assert [p.type for p in pkts] == [CONNECT, PUBLISH, PUBLISH, PUBLISH, SUBSCRIBE, DISCONNECT]
    assert pkts[0].body[8:10] == b"\x00\x00"  # keep-alive 0 sent as asked


def test_connects_are_spaced_by_aws_connect_interval(unix_fw, fake_broker: FakeBroker):
    # AWS allows one CONNECT per second per client id; with limits=None the
    # client reconnects at once.
    r = run(unix_fw, fake_broker, """
for lim in (mqtt.AWS_LIMITS, None):
    c = mqtt.MQTTClient('dev', tcp, limits=lim)
    c.connect()
    c.close()
    c.connect()
    c.disconnect()
print('done', 1)
""")
    assert r == {"done": "1"}
    starts = [c.packets[0].at for c in fake_broker.connections]
    assert len(starts) == 4
    assert starts[1] - starts[0] >= 0.95
    assert starts[3] - starts[2] < 0.9


def utf8_cases() -> list[bytes]:
    """Every lead byte with the boundary values of its continuation bytes, the
    overlong, surrogate and beyond-U+10FFFF forms, truncations, and valid text."""
    cases = [b"", b"a", "π€😀".encode(), b"\xc2", b"\xe2\x82", b"\xf0\x9f\x98", b"\x80", b"\xbf",
             b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
             b"\xf0\x80\x80\xaf", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
             b"\xff", b"\xfe", b"a\xc3\xa9b\xe2\x82", b"\xc3\xa9\xc3"]
    for lead in range(0xC0, 0x100):
        for c1 in (0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0):
            for tail in (b"", b"\x80", b"\x80\x80", b"\x80\x80\x80", b"\x80\xc0", b"\x80\x80\x7f"):
                cases.append(bytes([lead, c1]) + tail + b"x")
    return cases


def test_utf8_check_matches_a_strict_decoder(unix_fw):
    """The client's UTF-8 check (MicroPython's own decoder accepts overlong
    forms and surrogates) agrees with CPython's strict decoder on every case."""
    cases = utf8_cases()
    out = unix_fw.run("import mqtt\nfrom mqtt import _utf8\nfor b in %r:\n"
                      "    try:\n        _utf8(b, 't')\n        print('ok')\n"
                      "    except mqtt.MQTTLimitError as e:\n        print(e)\n" % (cases,))
    got = out.splitlines()
    assert len(got) == len(cases)
    for b, line in zip(cases, got):
        try:
            b.decode("utf-8", "strict")
            want = "ok"
        except UnicodeDecodeError:
            want = "t is not well-formed UTF-8"
        assert line == want, b
