"""The mqtt client's wire behaviour, checked byte by byte against a scripted
fake broker running in the test process (harness.mosquitto.FakeBroker)."""

from __future__ import annotations

import hashlib
import textwrap

from harness.mosquitto import (FakeBroker, FakeConnection, Packet, connack, default_handler,
                               encode_remaining, mp_prelude)

PUBLISH, PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, CONNECT = 3, 4, 8, 10, 12, 14, 1


def run(unix_fw, broker: FakeBroker, body: str, **kw) -> str:
    out = unix_fw.run(mp_prelude(broker.port) + textwrap.dedent(body), **kw)
    broker.wait_idle()
    return out


def types(broker: FakeBroker) -> list[int]:
    return [p.type for p in broker.packets()]


def test_connect_packet_encoding(unix_fw, fake_broker: FakeBroker):
    out = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev-π', tcp, keepalive=300, options=mqtt.Options(clean_session=False, user='u', password=b'p\\x00w'))
c.set_last_will('st/dev', b'gone', retain=True, qos=1)
print(c.connect())
c.disconnect()
""")
    assert out.strip() == "False"
    pkt = fake_broker.connections[0].packets[0]
    assert pkt.first == 0x10
    body = pkt.body
    assert body[:7] == b"\x00\x04MQTT\x04"
    # user, password, will retain, will QoS 1, will flag; clean session off
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04
    assert body[8:10] == (300).to_bytes(2, "big")
    fields, i = [], 10
    while i < len(body):
        n = int.from_bytes(body[i:i + 2], "big")
        fields.append(body[i + 2:i + 2 + n])
        i += 2 + n
    assert fields == ["dev-π".encode(), b"st/dev", b"gone", b"u", b"p\x00w"]
    assert types(fake_broker) == [CONNECT, DISCONNECT]
    assert fake_broker.connections[0].packets[1].body == b""


def test_connack_codes_are_mapped(unix_fw, fake_broker: FakeBroker):
    codes = iter([1, 2, 3, 4, 5, 9])
    fake_broker.handler = lambda conn, pkt: conn.send(connack(rc=next(codes))) if pkt.type == 1 else None
    out = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev', tcp, limits=dict(mqtt.AWS_LIMITS, connect_interval=0))
for i in range(6):
    try:
        c.connect()
    except mqtt.MQTTConnectError as e:
        print(e.rc, c.connected, e)
""")
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines] == [[str(i), "False"] for i in (1, 2, 3, 4, 5, 9)]
    for line, text in zip(lines, ["unacceptable protocol version", "identifier rejected",
                                  "server unavailable", "bad user name or password",
                                  "not authorized", "unknown return code"]):
        assert text in line
    # Every refusal closed its connection; the client sent nothing after CONNECT.
    assert types(fake_broker) == [CONNECT] * 6


def swallow_first_publish(conn: FakeConnection, pkt: Packet) -> None:
    if pkt.type == PUBLISH and sum(p.type == PUBLISH for p in conn.broker.packets()) == 1:
        return
    default_handler(conn, pkt)


def test_qos1_retransmitted_with_dup_until_puback(unix_fw, fake_broker: FakeBroker):
    fake_broker.handler = swallow_first_publish
    out = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev', tcp, options=mqtt.Options(ack_timeout=0.5, log=print))
c.connect()
print('pid', c.publish('tele/x', b'payload-1', qos=1))
print('pending', c.pending())
c.disconnect()
""")
    assert "no PUBACK for 1: retransmitting (DUP)" in out
    assert out.splitlines()[-2:] == ["pid 1", "pending []"]
    pubs = [p for p in fake_broker.packets() if p.type == PUBLISH]
    assert len(pubs) == 2
    assert pubs[0].flags == 0b0010 and pubs[1].flags == 0b1010  # QoS 1, then DUP + QoS 1
    assert pubs[0].publish_fields() == pubs[1].publish_fields() == (b"tele/x", 1, b"payload-1")
    assert pubs[1].at - pubs[0].at >= 0.45


def test_qos1_gives_up_after_max_retries(unix_fw, fake_broker: FakeBroker):
    fake_broker.handler = lambda conn, pkt: None if pkt.type == PUBLISH else default_handler(conn, pkt)
    out = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev', tcp, options=mqtt.Options(ack_timeout=0.3, max_retries=2))
c.connect()
try:
    c.publish('tele/x', b'p', qos=1)
except mqtt.MQTTTimeoutError as e:
    print('timeout', e)
print(c.pending(), c.connected)
c.wait_msg(1)
c.disconnect()
""")
    assert out.splitlines() == ["timeout no PUBACK for packet 1 after 2 retransmissions", "[] True"]
    pubs = [p for p in fake_broker.packets() if p.type == PUBLISH]
    assert [p.flags for p in pubs] == [0b0010, 0b1010, 0b1010]


def test_qos1_without_waiting_tracks_pubacks(unix_fw, fake_broker: FakeBroker):
    held: list[bytes] = []

    def ack_in_reverse(conn: FakeConnection, pkt: Packet) -> None:
        if pkt.type == PUBLISH:
            held.append(pkt.body[2 + int.from_bytes(pkt.body[:2], "big"):][:2])
            if len(held) == 3:
                for pid in reversed(held):
                    conn.send(b"\x40\x02" + pid)
            return
        default_handler(conn, pkt)

    fake_broker.handler = ack_in_reverse
    out = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev', tcp, options=mqtt.Options(max_inflight=3))
c.connect()
ids = [c.publish('t', b'm%d' % i, qos=1, wait=False) for i in range(3)]
print(ids, c.pending())
for i in range(50):
    c.check_msg()
    if not c.pending():
        break
    time.sleep_ms(20)
print(c.pending())
c.disconnect()
""")
    assert out.splitlines() == ["[1, 2, 3] [1, 2, 3]", "[]"]
    assert [p.flags for p in fake_broker.packets() if p.type == PUBLISH] == [2, 2, 2]


def test_qos1_resent_on_reconnect_same_packet_id(unix_fw, fake_broker: FakeBroker):
    # Connection 1 swallows the PUBLISH and drops the link; connection 2
    # reports a kept session: the client must redeliver with DUP and the same id.
    def handler(conn: FakeConnection, pkt: Packet) -> None:
        first = conn is conn.broker.connections[0]
        if pkt.type == CONNECT:
            conn.send(connack(session_present=not first))
        elif pkt.type == PUBLISH and pkt.flags & 6 and first:
            conn.close()
        else:
            default_handler(conn, pkt)

    fake_broker.handler = handler
    out = run(unix_fw, fake_broker, """
import mqtt.robust
c = mqtt.robust.MQTTClient('dev', tcp, options=mqtt.Options(clean_session=False),
                           backoff=mqtt.robust.Backoff(base=0.1))
c.connect()
c.publish('a', b'x', qos=0)
try:
    c.publish('tele/y', b'keep-me', qos=1)
except mqtt.MQTTConnectionError as e:
    print('lost', c.pending())
print('present', c.reconnect())
for i in range(50):
    if not c.pending():
        break
    c.wait_msg(0.1)
print('pending', c.pending())
c.disconnect()
""")
    assert out.splitlines() == ["lost [1]", "present True", "pending []"]
    c1, c2 = fake_broker.connections
    assert [p.type for p in c1.packets] == [CONNECT, PUBLISH, PUBLISH]
    assert [p.type for p in c2.packets] == [CONNECT, PUBLISH, DISCONNECT]
    assert c1.packets[0].body[7] & 0x02 == 0 and c2.packets[0].body[7] & 0x02 == 0
    first, again = c1.packets[2], c2.packets[1]
    assert first.flags == 0b0010 and again.flags == 0b1010
    assert first.publish_fields() == again.publish_fields() == (b"tele/y", 1, b"keep-me")


def test_qos1_resent_as_new_message_with_clean_session(unix_fw, fake_broker: FakeBroker):
    def handler(conn: FakeConnection, pkt: Packet) -> None:
        if pkt.type == PUBLISH and conn is conn.broker.connections[0]:
            conn.close()
        else:
            default_handler(conn, pkt)

    fake_broker.handler = handler
    out = run(unix_fw, fake_broker, """
import mqtt.robust
c = mqtt.robust.MQTTClient('dev', tcp, backoff=mqtt.robust.Backoff(base=0.1))
c.connect()
try:
    c.publish('tele/y', b'again', qos=1)
except mqtt.MQTTConnectionError:
    pass
print(c.reconnect())
while c.pending():
    c.wait_msg(0.1)
c.disconnect()
""")
    assert out.strip() == "False"
    again = fake_broker.connections[1].packets[1]
    assert again.flags == 0b0010 and again.publish_fields() == (b"tele/y", 1, b"again")


def test_robust_restores_granted_filters_but_not_unsubscribed_ones(unix_fw, fake_broker: FakeBroker):
    def handler(conn: FakeConnection, pkt: Packet) -> None:
        if pkt.type == PINGREQ and conn is conn.broker.connections[0]:
            conn.close()
        else:
            default_handler(conn, pkt)

    fake_broker.handler = handler
    out = run(unix_fw, fake_broker, """
import mqtt.robust
c = mqtt.robust.MQTTClient('dev', tcp, backoff=mqtt.robust.Backoff(base=0.1))
c.connect()
print(c.subscribe(['a/+', ('b/#', 1), 'c']))
c.unsubscribe(['a/+', 'c'])
try:
    c.ping()
    c.wait_msg(5)
except mqtt.MQTTConnectionError:
    print('lost')
print(c.reconnect())
c.disconnect()
""")
    assert out.splitlines() == ["[0, 1, 0]", "lost", "False"]
    c1, c2 = fake_broker.connections
    assert [p.type for p in c1.packets] == [CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ]
    unsub = c1.packets[2]
    assert unsub.first == 0xA2 and unsub.body[2:] == b"\x00\x03a/+\x00\x01c"
    assert [p.type for p in c2.packets] == [CONNECT, SUBSCRIBE, DISCONNECT]
    assert c2.packets[1].first == 0x82 and c2.packets[1].body[2:] == b"\x00\x03b/#\x01"


def test_pings_when_idle_and_detects_missing_pingresp(unix_fw, fake_broker: FakeBroker):
    answered = []

    def answer_two_pings(conn: FakeConnection, pkt: Packet) -> None:
        if pkt.type == PINGREQ:
            if len(answered) < 2:
                answered.append(pkt.at)
                conn.send(b"\xd0\x00")
            return
        default_handler(conn, pkt)

    fake_broker.handler = answer_two_pings
    out = run(unix_fw, fake_broker, """
lim = dict(mqtt.AWS_LIMITS, keepalive=(1, 1200))
c = mqtt.MQTTClient('dev', tcp, keepalive=1, limits=lim, options=mqtt.Options(ack_timeout=0.5))
c.connect()
t0 = time.ticks_ms()
try:
    c.wait_msg(10)
    print('not detected')
except mqtt.MQTTKeepAliveError as e:
    print(type(e).__name__, e)
    print('after', time.ticks_diff(time.ticks_ms(), t0) // 100)
print(c.connected)
try:
    c.check_msg()
except mqtt.MQTTConnectionError as e:
    print(e)
""")
    lines = out.splitlines()
    assert lines[0] == "MQTTKeepAliveError no PINGRESP within 500 ms: link considered dead"
    # Pings at 0.75 s, 1.5 s, 2.25 s of idleness; the third is unanswered.
    assert 25 <= int(lines[1].split()[1]) <= 35
    assert lines[2:] == ["False", "not connected"]
    conn = fake_broker.connections[0]
    pings = [p for p in conn.packets if p.type == PINGREQ]
    assert len(pings) == 3 and all(p.body == b"" for p in pings)
    assert pings[0].at - conn.packets[0].at >= 0.7
    assert conn.closed_by_peer  # the client closed the dead link


def test_suback_failure_raises_and_keeps_granted(unix_fw, fake_broker: FakeBroker):
    def refuse_second(conn: FakeConnection, pkt: Packet) -> None:
        if pkt.type == SUBSCRIBE:
            conn.send(b"\x90\x04" + pkt.body[:2] + b"\x01\x80")
        else:
            default_handler(conn, pkt)

    fake_broker.handler = refuse_second
    out = run(unix_fw, fake_broker, """
import mqtt.robust
c = mqtt.robust.MQTTClient('dev', tcp)
c.connect()
try:
    c.subscribe([('ok/+', 1), ('no/#', 0)])
except mqtt.MQTTSubscribeError as e:
    print(e.topics, e)
print(c._subs)
c.disconnect()
""")
    assert out.splitlines() == ["[b'no/#'] broker refused subscription to no/#", "{b'ok/+': 1}"]
    sub = fake_broker.connections[0].packets[1]
    assert sub.first == 0x82
    assert sub.body[2:] == b"\x00\x04ok/+\x01\x00\x04no/#\x00"


def test_incoming_publish_acked_dropped_when_too_big(unix_fw, fake_broker: FakeBroker):
    def push(conn: FakeConnection, pkt: Packet) -> None:
        default_handler(conn, pkt)
        if pkt.type == SUBSCRIBE:
            for flags, pid, payload in ((0x02, 7, b"a" * 10), (0x0B, 8, b"b" * 600), (0x00, None, b"c")):
                body = b"\x00\x04in/x" + (pid.to_bytes(2, "big") if pid else b"") + payload
                conn.send(bytes([0x30 | flags]) + encode_remaining(len(body)) + body)

    fake_broker.handler = push
    out = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev', tcp, options=mqtt.Options(max_rx=500))
c.connect()
c.subscribe('in/#', 1)
for i in range(2):
    t, m = c.wait_msg(5)
    print(t, bytes(m)[:3], len(m), c.flags)
print('dropped', c.dropped)
c.disconnect()
""")
    assert out.splitlines() == ["b'in/x' b'aaa' 10 2", "b'in/x' b'c' 1 0", "dropped 1"]
    acks = [p for p in fake_broker.packets() if p.type == PUBACK]
    assert [a.body for a in acks] == [b"\x00\x07", b"\x00\x08"]


def test_remaining_length_encoding_boundaries(unix_fw, fake_broker: FakeBroker):
    # Topic 't' (3 bytes with its length) + payload = remaining length.
    sizes = [127, 128, 16383, 16384, 2097151, 2097152]
    out = run(unix_fw, fake_broker, f"""
c = mqtt.MQTTClient('dev', tcp, limits=None, options=mqtt.Options(buf_size=64))
c.connect()
for r in {sizes}:
    c.publish('t', bytes(r - 3))
c.disconnect()
print('ok')
""")
    assert out.strip() == "ok"
    conn = fake_broker.connections[0]
    pubs = [p for p in conn.packets if p.type == PUBLISH]
    assert [len(p.body) for p in pubs] == sizes
    raw = bytes(conn.raw)
    pos = 0
    for r in sizes:
        pos = raw.index(b"\x30", pos)
        assert raw[pos + 1:pos + 1 + len(encode_remaining(r))] == encode_remaining(r)
        pos += 1 + len(encode_remaining(r)) + r
    assert [len(encode_remaining(r)) for r in sizes] == [1, 2, 2, 3, 3, 4]


def test_receives_4_byte_remaining_length(unix_fw, fake_broker: FakeBroker):
    payload = hashlib.sha256(b"seed").digest() * 65537  # 2,097,184 bytes
    body = b"\x00\x03big" + payload

    def push(conn: FakeConnection, pkt: Packet) -> None:
        default_handler(conn, pkt)
        if pkt.type == SUBSCRIBE:
            conn.send(b"\x30" + encode_remaining(len(body)) + body)

    fake_broker.handler = push
    out = run(unix_fw, fake_broker, """
import hashlib
c = mqtt.MQTTClient('dev', tcp, options=mqtt.Options(max_rx=3000000))
c.connect()
c.subscribe('big', 0)
t, m = c.wait_msg(10)
print(t, len(m), hashlib.sha256(m).digest().hex())
c.disconnect()
""")
    assert out.split() == ["b'big'", str(len(payload)), hashlib.sha256(payload).hexdigest()]


def test_malformed_and_unexpected_packets_close_the_link(unix_fw, fake_broker: FakeBroker):
    bad = iter([b"\x30\xff\xff\xff\xff\x01", b"\x20\x02\x00\x00", b"\x50\x02\x00\x01"])

    def handler(conn: FakeConnection, pkt: Packet) -> None:
        default_handler(conn, pkt)
        if pkt.type == CONNECT:
            conn.send(next(bad))

    fake_broker.handler = handler
    out = run(unix_fw, fake_broker, """
c = mqtt.MQTTClient('dev', tcp, limits=dict(mqtt.AWS_LIMITS, connect_interval=0))
for i in range(3):
    c.connect()
    try:
        c.wait_msg(2)
    except mqtt.MQTTProtocolError as e:
        print(e, c.connected)
""")
    assert out.splitlines() == ["malformed remaining length False", "unexpected CONNACK False",
                                "unexpected packet 0x50 from broker False"]
    assert all(c.closed_by_peer for c in fake_broker.connections)


SLOW_STREAM = """
import mqtt
class Slow:
    # A stream that takes at most `per` bytes a call and every other call
    # none (it would block); with stall=True it takes nothing after 8 bytes.
    def __init__(self, per, stall=False):
        self.out = bytearray()
        self.per = per
        self.stall = stall
        self.calls = 0
        self.inp = bytearray(b'\\x20\\x02\\x00\\x00')
    def write(self, b):
        self.calls += 1
        if self.calls % 2 or (self.stall and len(self.out) >= 8):
            return None
        n = min(self.per, len(b))
        self.out += bytes(b[:n])
        return n
    def readinto(self, mv):
        if not self.inp:
            return None
        n = min(len(mv), len(self.inp))
        mv[:n] = self.inp[:n]
        self.inp = self.inp[n:]
        return n
    def close(self):
        pass
"""


def test_partial_and_stalled_writes(unix_fw):
    """A transport that takes a few bytes at a time gets every byte, in
    order; one that stops taking bytes ends the connection after ack_timeout."""
    out = unix_fw.run(SLOW_STREAM + """
s = Slow(3)
c = mqtt.MQTTClient('dev', s, options=mqtt.Options(ack_timeout=1))
print(c.connect())
c.publish('t/x', b'y' * 100)
print(bytes(s.out).hex())
s = Slow(3, stall=True)
c = mqtt.MQTTClient('dev', s, options=mqtt.Options(ack_timeout=0.3))
try:
    c.connect()
except mqtt.MQTTConnectionError as e:
    print(type(e).__name__, e, c.connected, len(s.out))
""")
    lines = out.splitlines()
    connect = b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03dev"
    publish = b"\x30\x69\x00\x03t/x" + b"y" * 100
    assert lines[0] == "False"
    assert bytes.fromhex(lines[1]) == connect + publish
    assert lines[2] == "MQTTConnectionError write timed out: the broker is not reading False 9"
