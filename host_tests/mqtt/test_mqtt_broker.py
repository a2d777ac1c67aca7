"""The frozen mqtt client on the unix firmware against Debian's mosquitto (plain TCP)."""

from __future__ import annotations

import hashlib
import re
import textwrap
import threading

from harness.mosquitto import Mosquitto, mp_prelude


def run(unix_fw, port: int, body: str, **kw) -> str:
    return unix_fw.run(mp_prelude(port) + textwrap.dedent(body), **kw)


COLLECT = """
got = []
def cb(t, m):
    got.append((t, bytes(m)))
def collect(c, n, t=5):
    end = time.ticks_add(time.ticks_ms(), int(t * 1000))
    while len(got) < n and time.ticks_diff(end, time.ticks_ms()) > 0:
        c.wait_msg(0.2)
"""


def test_connect_subscribe_publish_receive_own_messages(unix_fw, mosquitto: Mosquitto):
    out = run(unix_fw, mosquitto.port, COLLECT + """
c = mqtt.MQTTClient('thing-pubsub', tcp, callback=cb)
print('present', c.connect())
print('granted', c.subscribe([('t/q0', 0), ('t/q1', 1)]))
print('pid0', c.publish('t/q0', b'zero'))
print('pid1', c.publish('t/q1', b'one', qos=1))
collect(c, 2)
print('got', sorted(got))
c.unsubscribe('t/q0')
c.publish('t/q0', b'gone', qos=1)
c.publish('t/q1', b'still', qos=1)
collect(c, 4, 1.5)
print('after', got[2:])
print('pending', c.pending())
c.disconnect()
print('connected', c.connected)
""")
    lines = out.splitlines()
    assert lines[:4] == ["present False", "granted [0, 1]", "pid0 None", "pid1 2"], out
    assert lines[4] == "got [(b't/q0', b'zero'), (b't/q1', b'one')]"
    assert lines[5] == "after [(b't/q1', b'still')]"
    assert lines[6:] == ["pending []", "connected False"]
    mosquitto.wait_for_log(r"Received DISCONNECT from thing-pubsub")
    log = mosquitto.log_text()
    assert re.search(r"New client connected from 127\.0\.0\.1:\d+ as thing-pubsub \(p2, c1, k60\)", log)
    assert "Received PUBLISH from thing-pubsub (d0, q1, r0, m2, 't/q1'" in log
    # The broker's QoS 1 deliveries were acknowledged by the client.
    assert len(re.findall(r"Received PUBACK from thing-pubsub", log)) == 2


def test_messages_without_callback_are_queued_and_returned(unix_fw, mosquitto: Mosquitto):
    # The own message arrives while publish() waits for PUBACK: it must be kept
    # for wait_msg(), not lost.
    out = run(unix_fw, mosquitto.port, """
c = mqtt.MQTTClient('thing-queue', tcp)
c.connect()
c.subscribe('q/#', 1)
c.publish('q/a', b'first', qos=1)
c.publish('q/b', 'second', qos=1)
t, m = c.wait_msg(5)
print(t, bytes(m))
t, m = c.wait_msg(5)
print(t, bytes(m))
print(c.check_msg(), c.wait_msg(0.3))
c.disconnect()
""")
    assert out.split("\n")[:3] == ["b'q/a' b'first'", "b'q/b' b'second'", "None None"]


def test_keepalive_pings_when_idle(unix_fw, mosquitto: Mosquitto):
    # keep-alive 1 s is below AWS's 30 s floor: the test relaxes just that
    # limit; the client pings after 3/4 of the keep-alive without traffic.
    out = run(unix_fw, mosquitto.port, """
lim = dict(mqtt.AWS_LIMITS, keepalive=(1, 1200))
c = mqtt.MQTTClient('thing-ka', tcp, keepalive=1, limits=lim)
c.connect()
print(c.wait_msg(3.2))
c.disconnect()
""")
    assert out.strip() == "None"
    mosquitto.wait_for_log(r"Received DISCONNECT from thing-ka")
    log = mosquitto.log_text()
    assert "as thing-ka (p2, c1, k1)" in log
    pings = len(re.findall(r"Received PINGREQ from thing-ka", log))
    assert 3 <= pings <= 6, log
    assert len(re.findall(r"Sending PINGRESP to thing-ka", log)) == pings
    # No "exceeded timeout" disconnect by the broker.
    assert "exceeded timeout" not in log


def test_reconnect_after_broker_restart_with_backoff(unix_fw, mosquitto: Mosquitto):
    def restart_when_subscribed() -> None:
        mosquitto.wait_for_log(r"Sending SUBACK to thing-rc", timeout=20)
        mosquitto.restart(down_for=2.5)

    th = threading.Thread(target=restart_when_subscribed)
    th.start()
    try:
        out = run(unix_fw, mosquitto.port, COLLECT + """
import mqtt.robust
c = mqtt.robust.MQTTClient('thing-rc', tcp, callback=cb, options=mqtt.Options(log=print),
                           backoff=mqtt.robust.Backoff(base=0.2, cap=1.0, attempts=40))
c.connect()
c.subscribe('rc/t', 1)
try:
    c.wait_msg(20)
    print('no disconnect seen')
except mqtt.MQTTConnectionError as e:
    print('lost', type(e).__name__)
print('reconnected present', c.reconnect())
c.publish('rc/t', b'back', qos=1)
collect(c, 1)
print('got', got)
c.disconnect()
""", timeout=60)
    finally:
        th.join()
    assert "lost MQTTConnectionError" in out
    assert "got [(b'rc/t', b'back')]" in out  # resubscribed automatically
    delays = [(int(n), int(d)) for n, d in re.findall(r"connect attempt (\d+) failed .*; next in (\d+) ms", out)]
    assert len(delays) >= 3, out
    assert [n for n, _ in delays] == list(range(1, len(delays) + 1))
    ratios = []
    for n, d in delays:
        full = min(1000, 200 * 2 ** (n - 1))
        assert full // 2 <= d <= full, (n, d, out)
        ratios.append(d / full)
    assert len({round(r, 3) for r in ratios}) > 1, "no jitter"
    log = mosquitto.log_text()
    assert len(re.findall(r"New client connected from .* as thing-rc", log)) == 2
    assert len(re.findall(r"Received SUBSCRIBE from thing-rc", log)) == 2


def test_connack_refusal_is_a_clear_error(unix_fw, mosquitto_factory):
    broker = mosquitto_factory(allow_anonymous=False)
    out = run(unix_fw, broker.port, """
import mqtt.robust
c = mqtt.robust.MQTTClient('thing-denied', tcp, backoff=mqtt.robust.Backoff(attempts=5))
for f in (c.connect, c.reconnect):
    try:
        f()
    except mqtt.MQTTConnectError as e:
        print(e.rc, e)
print(c.connected)
""")
    msg = "5 connection refused by broker (CONNACK 5): not authorized (check the certificate, its policy or the credentials)"
    assert out.splitlines() == [msg, msg, "False"]
    # reconnect() does not retry a refusal that cannot fix itself.
    assert len(re.findall(r"New connection from", broker.log_text())) == 2


def test_user_name_and_password(unix_fw, mosquitto_factory):
    broker = mosquitto_factory(allow_anonymous=False, passwords={"dev": "s3cret"})
    out = run(unix_fw, broker.port, """
for pw in ('s3cret', b'wrong'):
    c = mqtt.MQTTClient('thing-pw', tcp, options=mqtt.Options(user='dev', password=pw))
    try:
        c.connect()
        print('ok', c.connected)
        c.disconnect()
    except mqtt.MQTTConnectError as e:
        print('refused', e.rc)
""")
    assert out.split() == ["ok", "True", "refused", "5"]
    assert "as thing-pw (p2, c1, k60, u'dev')" in broker.log_text()


def test_last_will_sent_on_drop_not_on_disconnect(unix_fw, mosquitto: Mosquitto):
    out = run(unix_fw, mosquitto.port, COLLECT + """
watcher = mqtt.MQTTClient('thing-watch', tcp, callback=cb)
watcher.connect()
watcher.subscribe('will/#', 1)
a = mqtt.MQTTClient('thing-will-a', tcp)
a.set_last_will('will/a', b'a died', qos=1)
a.connect()
a.close()            # no DISCONNECT: the broker publishes the will
b = mqtt.MQTTClient('thing-will-b', tcp)
b.set_last_will('will/b', b'b died', retain=False, qos=0)
b.connect()
b.disconnect()       # clean: no will
collect(watcher, 2, 2)
print(got)
watcher.disconnect()
""")
    assert out.strip() == "[(b'will/a', b'a died')]"
    assert "Will message specified (6 bytes) (r0, q1)." in mosquitto.log_text()


def test_large_payloads_round_trip(unix_fw, mosquitto: Mosquitto):
    # 128 KB (AWS's maximum) needs a 3-byte remaining length; 2.2 MB (with
    # limits=None) a 4-byte one, in both directions.
    out = run(unix_fw, mosquitto.port, COLLECT + """
import hashlib
for lim, n in ((mqtt.AWS_LIMITS, 131072), (None, 2200000)):
    got.clear()
    c = mqtt.MQTTClient('thing-big', tcp, callback=cb, limits=lim, options=mqtt.Options(max_rx=n, ack_timeout=20))
    c.connect()
    c.subscribe('big/t', 1)
    data = bytes(range(256)) * (n // 256)
    c.publish('big/t', data, qos=1)
    collect(c, 1, 20)
    print(n, len(got[0][1]), hashlib.sha256(got[0][1]).digest().hex())
    c.disconnect()
""", timeout=120)
    for line, n in zip(out.splitlines(), (131072, 2200000)):
        data = bytes(range(256)) * (n // 256)
        assert line.split() == [str(n), str(len(data)), hashlib.sha256(data).hexdigest()]
