# mqtt: an MQTT 3.1.1 client for MicroPython, with AWS IoT Core's limits
# enforced by default (mqtt.aws). One connection's protocol lives here;
# mqtt.robust adds reconnect with backoff and restores subscriptions.
#
#   c = MQTTClient("my-thing", connect_fn, keepalive=60, callback=on_msg)
#   c.set_last_will("t/status", b"offline", retain=False, qos=1)   # optional
#   c.connect()                        -> session_present (bool)
#   c.subscribe("a/b", qos=1)          -> granted QoS (list when given a list)
#   c.publish("a/b", b"hi", qos=1)     -> packet id (QoS 1) or None
#   c.wait_msg(timeout) / c.check_msg() -> (topic: bytes, msg: bytearray) or None
#   c.unsubscribe("a/b"); c.ping(); c.pending(); c.disconnect()
#
# The rest is grouped in Options (credentials, clean session, timeouts,
# sizes, log): MQTTClient(..., options=Options(ack_timeout=5, user="u")).
#
# Errors: MQTTLimitError (a ValueError) for anything AWS or MQTT would refuse,
# raised before a byte is sent; MQTTConnectError (.rc) for a CONNACK refusal;
# MQTTConnectionError (MQTTProtocolError, MQTTKeepAliveError) when the link is
# lost, after which the socket is closed; MQTTTimeoutError when an ack is late
# on a live link; MQTTSubscribeError (.topics) for SUBACK 0x80.
# The callback runs inside the client's calls (publish waiting for PUBACK
# included); it may publish but should not subscribe. Without a callback,
# PUBLISHes that arrive while a call waits are queued for wait_msg(). After a
# PUBLISH, .flags holds its fixed-header flags (DUP 8, QoS 2/4, RETAIN 1).
#
# The transport is either a connected stream (plain or TLS socket) or a callable
# returning one (p11tls.opener()); only a callable allows a new connect(). The
# client switches the stream to non-blocking and waits with select.poll,
# because TLS sockets have no settimeout and a blocking read on a half-open
# link would hang forever. Not thread-safe: use one client from one thread.

from micropython import const
import time
from .aws import AWS_LIMITS, counted

try:
    import select
except ImportError:  # boards without select: the client sleeps and retries
    select = None

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_UNSUBSCRIBE = const(0xA2)
_UNSUBACK = const(0xB0)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
_DISCONNECT = const(0xE0)
_MAX_REMAINING = const(268435455)
_POLLIN = const(1)
_POLLOUT = const(4)

_CONNACK_TEXT = (
    None,
    "unacceptable protocol version",
    "identifier rejected (client id refused by the broker)",
    "server unavailable",
    "bad user name or password",
    "not authorized (check the certificate, its policy or the credentials)",
)


class MQTTError(Exception):
    pass


class MQTTConnectError(MQTTError):
    # The broker answered CONNACK with a refusal; .rc is its return code.
    def __init__(self, rc):
        self.rc = rc
        t = _CONNACK_TEXT[rc] if 0 < rc < 6 else "unknown return code"
        super().__init__("connection refused by broker (CONNACK %d): %s" % (rc, t))


class MQTTConnectionError(MQTTError):
    # The link is gone (closed, I/O error, no answer in time); the socket is
    # closed and connect() (mqtt.robust: reconnect()) may be used.
    pass


class MQTTProtocolError(MQTTConnectionError):
    pass


class MQTTKeepAliveError(MQTTConnectionError):
    pass


class MQTTTimeoutError(MQTTError):
    # An acknowledgement did not come in time; the connection is still up.
    pass


class MQTTSubscribeError(MQTTError):
    # SUBACK carried 0x80 for .topics (list of bytes).
    def __init__(self, topics):
        self.topics = topics
        super().__init__("broker refused subscription to %s" % b", ".join(topics).decode())


class MQTTLimitError(ValueError):
    pass


def _utf8(s, what):
    # MQTT strings must be well-formed UTF-8 without U+0000 or surrogates;
    # MicroPython's own decoder accepts overlong forms and surrogates, so the
    # bytes are checked here. A pure-ASCII str takes the short path.
    if isinstance(s, str):
        b = s.encode()
        n = len(b) if len(b) != len(s) else 0
    elif isinstance(s, (bytes, bytearray)):
        b = bytes(s)
        n = len(b)
    else:
        raise TypeError(what + " must be str or bytes")
    if b"\x00" in b:
        raise MQTTLimitError(what + " contains U+0000")
    i = 0
    while i < n:
        c = b[i]
        i += 1
        if c < 0x80:
            continue
        # continuation bytes, and the first one's range (no overlong forms,
        # surrogates or code points above U+10FFFF), by the lead byte
        k = (c > 0xC1) + (c > 0xDF) + (c > 0xEF) if c < 0xF5 else 0
        lo = 0x80 + (c == 0xE0) * 0x20 + (c == 0xF0) * 0x10
        hi = 0xBF - (c == 0xED) * 0x20 - (c == 0xF4) * 0x30
        j = i + k if k and i + k <= n else 0
        while i < j and lo <= b[i] <= hi:
            lo = 0x80
            hi = 0xBF
            i += 1
        if i != j:
            raise MQTTLimitError(what + " is not well-formed UTF-8")
    return b


def _qos(q):
    if q not in (0, 1):
        raise MQTTLimitError("QoS %r not supported (0 or 1; AWS IoT Core has no QoS 2)" % (q,))
    return q


def _why(e):
    # An OSError as text: errno values by name ("ECONNREFUSED"), mbedTLS codes
    # as p11tls names them (with the server's alert: in TLS 1.3 a refused
    # client certificate shows on the first read), others as their message.
    a = e.args
    if a and isinstance(a[0], int):
        n = a[0]
        try:
            if n > -256:
                # (the tls module passes the socket's errno on as -errno)
                from errno import errorcode
                return "%s (%s)" % (errorcode[abs(n)], type(e).__name__)
            from p11tls import tls_error
            return str(tls_error(e) or e)
        except (ImportError, KeyError):
            pass
    return str(e) or repr(e)


class Options:
    # Everything MQTTClient takes beyond its first five arguments. Defaults
    # live on the class, so an instance holds only what was given:
    # Options(ack_timeout=5, log=print).
    clean_session = True
    user = None  # str or bytes; a password needs a user name (MQTT 3.1.1)
    password = None  # str or bytes
    ack_timeout = 10  # s for CONNACK, SUBACK, UNSUBACK, PUBACK, PINGRESP
    connect_timeout = 30  # s for all of connect(): transport, CONNECT, CONNACK
    max_retries = 3  # DUP retransmissions of a QoS 1 publish() that waits
    max_inflight = 4  # QoS 1 messages awaiting PUBACK at once
    max_rx = 16384  # largest incoming payload kept (bigger: acked, counted in .dropped)
    queue = 4  # PUBLISHes kept for wait_msg() when there is no callback
    buf_size = 384  # scratch buffer for outgoing packets
    log = None  # print-like function for connection events

    def __init__(self, **kw):
        for k in kw:
            if k[0] == "_" or not hasattr(Options, k):
                raise TypeError("unknown MQTT option %r" % k)
            setattr(self, k, kw[k])


class _Inflight:
    # One QoS 1 publish awaiting PUBACK: pid (0: the slot is free), topic,
    # msg, retain, sent (ticks_ms of the last send), resends, cap. The slots
    # are made once and reused, so nothing is allocated per message. They
    # hold references, not copies, of the caller's payload (don't mutate it
    # until acknowledged). cap is the number of sends allowed while a
    # blocking publish() waits on the slot; 0 means "retransmit until
    # PUBACK". publish() sets every field before the slot is used.

    def free(self):
        self.pid = 0
        self.topic = self.msg = None

    __init__ = free


class MQTTClient:
    def __init__(self, client_id, transport, keepalive=60, callback=None, limits=AWS_LIMITS,
                 options=None):
        o = options or Options
        lim = limits or {}
        self._lim = lim
        cid = _utf8(client_id, "client id")
        m = lim.get("client_id") or 65535
        if len(cid) > m:
            raise MQTTLimitError("client id is %d bytes; limit %d" % (len(cid), m))
        if not cid and (limits is not None or not o.clean_session):
            raise MQTTLimitError("client id must not be empty")
        ka = lim.get("keepalive") or (0, 65535)
        if not isinstance(keepalive, int) or not ka[0] <= keepalive <= ka[1]:
            raise MQTTLimitError("keep-alive %r s is outside %d..%d s" % (keepalive, ka[0], ka[1]))
        user = o.user
        password = o.password
        if password is not None and user is None:
            raise ValueError("MQTT 3.1.1 allows a password only with a user name")
        self._user = None if user is None else _utf8(user, "user name")
        if isinstance(password, str):
            password = password.encode()
        if password is not None and len(password) > 65535:
            raise ValueError("password longer than 65535 bytes")
        self._pass = password
        self.client_id = cid
        self.keepalive = keepalive
        self.clean_session = o.clean_session
        self.cb = callback
        self._transport = transport
        self._tmo = int(o.ack_timeout * 1000)
        self._ctmo = o.connect_timeout
        self._retries = o.max_retries
        self._max_rx = o.max_rx
        self._qmax = o.queue
        self._log = o.log
        self._will = self._last_connect = self._sock = None
        # One scratch buffer for outgoing packets (header, topic and small
        # payloads go out in a single write: one TLS record, no Nagle stall;
        # bigger payloads are written from the caller's buffer, not copied)
        # and a 2-byte one for incoming header bytes and packet ids.
        self._buf = bytearray(max(o.buf_size, 16))
        self._bmv = memoryview(self._buf)
        self._h = bytearray(2)
        self._h2 = memoryview(self._h)
        self._h1 = self._h2[:1]
        self._slots = []
        for _ in range(max(1, o.max_inflight)):
            self._slots.append(_Inflight())
        self._q = []
        self._n = self._pid = self.dropped = self.flags = 0
        # the connection state (_sock, _poll, _cap: while connecting the
        # ticks_ms no read may pass, _ping_at, _msg, _want) starts closed
        self.close()

    # ---- validation (everything is checked before a byte is written) ----

    def _topic(self, topic, is_filter):
        b = _utf8(topic, "topic filter" if is_filter else "topic")
        if not b:
            raise MQTTLimitError("empty topic")
        lim = self._lim
        body = counted(b) if lim else b
        m = lim.get("topic") or 65535
        if len(body) > m:
            raise MQTTLimitError("topic is %d bytes; limit %d" % (len(body), m))
        m = lim.get("slashes")
        n = body.count(b"/")
        if m is not None and n > m:
            raise MQTTLimitError("topic has %d slashes; limit %d" % (n, m))
        if is_filter:
            lv = b.split(b"/")
            if b"#" in b and (lv[-1] != b"#" or b.count(b"#") > 1):
                raise ValueError("'#' must be the last level of a topic filter, alone")
            for x in lv:
                if b"+" in x and x != b"+":
                    raise ValueError("'+' must fill a whole topic filter level")
        elif b"#" in b or b"+" in b:
            raise ValueError("wildcards '+' and '#' are not allowed in a topic name")
        return b

    def _payload(self, msg, qos, limit=_MAX_REMAINING):
        if isinstance(msg, str):
            msg = msg.encode()
        _qos(qos)
        m = min(self._lim.get("payload") or limit, limit)
        if len(msg) > m:
            raise MQTTLimitError("payload is %d bytes; limit %d" % (len(msg), m))
        return msg

    def set_last_will(self, topic, msg, retain=False, qos=0):
        t = self._topic(topic, False)
        self._will = (t, self._payload(msg, qos, 65535), retain, qos)

    # ---- output ----

    def _write(self, data):
        # Every byte leaves through here: an OSError or a stalled write means
        # the link is unusable, so it is closed and reported one way.
        sock = self._sock
        if sock is None:
            raise MQTTConnectionError("not connected")
        n = len(data)
        off = 0
        end = time.ticks_add(time.ticks_ms(), self._tmo)
        try:
            while off < n:
                # (a memoryview only for the rest of a partial write)
                w = sock.write(memoryview(data)[off:] if off else data)
                if w:
                    off += w
                    self._tx = time.ticks_ms()
                elif time.ticks_diff(end, time.ticks_ms()) <= 0:
                    self._fail(MQTTConnectionError("write timed out: the broker is not reading"))
                else:
                    self._wait(_POLLOUT, 50)
        except OSError as e:
            self._fail(MQTTConnectionError("connection lost: " + _why(e)))

    def _put(self, data):
        n = len(data)
        p = self._n
        if p + n > len(self._buf):
            self._flush()
            if n > len(self._buf):
                self._write(data)
                return
            p = 0
        self._buf[p:p + n] = data
        self._n = p + n

    def _put16(self, v):
        if self._n + 2 > len(self._buf):
            self._flush()
        p = self._n
        self._buf[p] = v >> 8
        self._buf[p + 1] = v & 0xFF
        self._n = p + 2

    def _start(self, b0, rem):
        # Fixed header: type/flags, then the remaining length in 1..4 bytes.
        if rem > _MAX_REMAINING:
            raise MQTTLimitError("packet of %d bytes exceeds MQTT's maximum" % rem)
        buf = self._buf
        buf[0] = b0
        i = 1
        while True:
            buf[i] = rem & 0x7F | (0x80 if rem > 0x7F else 0)
            i += 1
            rem >>= 7
            if not rem:
                break
        self._n = i

    def _flush(self):
        if self._n:
            n = self._n
            self._n = 0
            self._write(self._bmv[:n])

    def _fail(self, exc):
        self.close()
        raise exc

    # ---- input ----

    def _wait(self, ev, ms):
        # Until the socket is readable (_POLLIN) or writable (_POLLOUT).
        p = self._poll
        if p is None:
            time.sleep_ms(min(ms, 10))
        else:
            p.modify(self._sock, ev)
            p.ipoll(ms)

    def _read(self, mv, end):
        # Fill mv completely; the peer has until `end` (ticks_ms) to send it.
        sock = self._sock
        off = 0
        n = len(mv)
        while off < n:
            r = sock.readinto(mv[off:] if off else mv)
            if r is None:
                left = time.ticks_diff(end, time.ticks_ms())
                if left <= 0:
                    raise MQTTConnectionError("broker sent an incomplete packet")
                self._wait(_POLLIN, left)
            elif r == 0:
                raise MQTTConnectionError("connection closed by broker")
            else:
                off += r

    def _read16(self, end):
        self._read(self._h2, end)
        return self._h[0] << 8 | self._h[1]

    def _step(self, wait_ms):
        # Housekeeping, then handle at most one incoming packet arriving
        # within wait_ms. Returns the packet type, or None.
        if self._sock is None:
            raise MQTTConnectionError("not connected")
        due = self._tick()
        if wait_ms is None or due < wait_ms:
            wait_ms = due
        try:
            try:
                return self._packet(wait_ms)
            except OSError as e:
                raise MQTTConnectionError("connection lost: " + _why(e))
        except MQTTConnectionError:
            self.close()
            raise

    def _packet(self, wait_ms):
        sock = self._sock
        h = self._h
        r = sock.readinto(self._h1)
        if r is None:
            self._wait(_POLLIN, wait_ms)
            r = sock.readinto(self._h1)
            if r is None:
                return None
        if r == 0:
            raise MQTTConnectionError("connection closed by broker")
        now = time.ticks_ms()
        self._rx = now
        b0 = h[0]
        end = self._end(now)
        rem = 0
        shift = 0
        while True:
            self._read(self._h1, end)
            rem |= (h[0] & 0x7F) << shift
            if not h[0] & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTProtocolError("malformed remaining length")
        t = b0 & 0xF0
        acks = t in (_PUBACK, _UNSUBACK, _CONNACK)
        if t == _PUBLISH:
            # kept in _msg for the caller (_pump, wait_msg), PUBACK sent first
            qos = (b0 >> 1) & 3
            if qos > 1:
                raise MQTTProtocolError("broker sent QoS %d" % qos)
            tl = self._read16(end)
            left = rem - 2 - tl - (2 if qos else 0)
            if left < 0 or tl > self._max_rx:
                raise MQTTProtocolError("malformed PUBLISH")
            topic = bytearray(tl)
            self._read(memoryview(topic), end)
            pid = self._read16(end) if qos else 0
            if left > self._max_rx:
                # Too big for this device: drain it through the scratch
                # buffer so the stream stays in step, acknowledge, and count
                # it as dropped.
                while left:
                    k = min(left, len(self._buf))
                    self._read(self._bmv[:k], end)
                    left -= k
                msg = None
                self.dropped += 1
            else:
                msg = bytearray(left)
                self._read(memoryview(msg), end)
            if qos:
                self._start(_PUBACK, 2)
                self._put16(pid)
                self._flush()
            self.flags = b0 & 0x0F
            if msg is not None:
                self._msg = (bytes(topic), msg)
        elif b0 == _PINGRESP and not rem:
            self._ping_at = None
        elif acks and rem == 2 or t == _SUBACK and rem > 2:
            pid = self._read16(end)  # CONNACK: its flags and return code
            if t == _CONNACK:
                if self._want != -1:
                    raise MQTTProtocolError("unexpected CONNACK")
                self._codes = bytes(self._h)
                self._want = 0
            elif t == _PUBACK:
                for s in self._slots:
                    if s.pid == pid:
                        s.free()
            else:
                codes = bytearray(rem - 2)
                self._read(memoryview(codes), end)
                if pid == self._want:
                    self._codes = codes
                    self._want = 0
        elif acks or b0 == _PINGRESP:
            raise MQTTProtocolError("bad length %d for packet 0x%02x" % (rem, b0))
        else:
            raise MQTTProtocolError("unexpected packet 0x%02x from broker" % b0)
        return t

    def _tick(self):
        # Housekeeping: a due ping, a missed PINGRESP, due retransmits.
        # Returns the ms until it has work again (at most 1000). Nothing but
        # CONNECT may precede CONNACK: no pings or retransmits before it.
        if not self.connected:
            return 1000
        now = time.ticks_ms()
        tmo = self._tmo
        if self._ping_at is not None:
            d = tmo - time.ticks_diff(now, self._ping_at)
            if d <= 0:
                self._fail(MQTTKeepAliveError("no PINGRESP within %d ms: link considered dead" % tmo))
        elif self._ka_ms:
            d = self._ka_ms - max(time.ticks_diff(now, self._tx), time.ticks_diff(now, self._rx))
            if d <= 0:
                self.ping()
                d = tmo
        else:
            d = 1000
        for s in self._slots:
            if s.pid:
                e = tmo - time.ticks_diff(now, s.sent)
                if e <= 0 and not (s.cap and s.resends >= s.cap - 1):
                    s.resends += 1
                    self._log and self._log("no PUBACK for %d: retransmitting (DUP)" % s.pid)
                    self._send_slot(s, True)
                    e = tmo
                d = min(d, e)
        return max(0, min(d, 1000))

    def _take(self):
        m = self._msg
        self._msg = None
        if self.cb:
            self.cb(m[0], m[1])
        return m

    def _end(self, now):
        end = time.ticks_add(now, self._tmo)
        cap = self._cap
        return cap if cap is not None and time.ticks_diff(cap, end) < 0 else end

    def _await(self, want):
        # Block until the reply to `want` (a packet id, or -1 for CONNACK),
        # handing any PUBLISH that arrives meanwhile to the callback or queue.
        self._want = want
        end = self._end(time.ticks_ms())
        while self._want:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                self._want = 0
                return False
            self._pump(left)
        return True

    # ---- connection ----

    def connect(self):
        # Opens the transport, sends CONNECT, waits for CONNACK, then re-sends
        # unacknowledged QoS 1 messages (they survive a lost link).
        self.close()
        iv = self._lim.get("connect_interval")
        if iv and self._last_connect is not None:
            d = iv - time.ticks_diff(time.ticks_ms(), self._last_connect)
            if d > 0:
                time.sleep_ms(d)
        t0 = time.ticks_ms()
        late = "connect did not complete within %s s" % self._ctmo
        t = self._transport
        try:
            self._sock = sock = t() if callable(t) and not hasattr(t, "write") else t
            try:
                sock.setblocking(False)
            except AttributeError:
                pass
            try:
                self._poll = select.poll()
                self._poll.register(sock, _POLLIN)
            except (AttributeError, TypeError, OSError, ValueError):
                # Not pollable (e.g. a Python stream object): sleep and retry.
                self._poll = None
        except OSError as e:
            self._fail(MQTTConnectionError("cannot open transport: " + _why(e)))
        self._cap = cap = time.ticks_add(t0, int(self._ctmo * 1000))
        if time.ticks_diff(cap, time.ticks_ms()) <= 0:
            self._fail(MQTTConnectionError(late))
        # Only a CONNECT that reaches the broker counts towards AWS's rate.
        self._last_connect = self._tx = self._rx = time.ticks_ms()
        self._ka_ms = self.keepalive * 750
        w = self._will
        fields = [self.client_id]
        flags = 0x02 if self.clean_session else 0
        if w:
            fields += w[:2]
            flags |= 0x04 | (w[3] << 3) | (0x20 if w[2] else 0)
        if self._user is not None:
            fields.append(self._user)
            flags |= 0x80
        if self._pass is not None:
            fields.append(self._pass)
            flags |= 0x40
        rem = 10
        for f in fields:
            rem += 2 + len(f)
        self._start(_CONNECT, rem)
        self._put(b"\x00\x04MQTT\x04")
        self._buf[self._n] = flags
        self._n += 1
        self._put16(self.keepalive)
        for f in fields:
            self._put16(len(f))
            self._put(f)
        self._flush()
        try:
            ok = self._await(-1)
        except MQTTConnectionError:
            if time.ticks_diff(cap, time.ticks_ms()) > 0:
                raise
            ok = False
        self._cap = None
        if not ok:
            self._fail(MQTTConnectionError(
                late if time.ticks_diff(cap, time.ticks_ms()) <= 0 else "no CONNACK within %d ms" % self._tmo))
        rc = self._codes[1]
        if rc:
            self.close()
            raise MQTTConnectError(rc)
        present = bool(self._codes[0] & 1)
        self.connected = True
        self._log and self._log("connected (session present: %d)" % present)
        for s in self._slots:
            if s.pid:
                s.resends = 0
                # Same session: a redelivery (DUP). New session: a new message.
                self._send_slot(s, not self.clean_session)
        return present

    def close(self):
        # Drop the link without DISCONNECT (the broker then sends the will).
        s = self._sock
        self._sock = self._poll = self._cap = self._msg = self._ping_at = None
        self._want = 0
        self.connected = False
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def disconnect(self):
        if self._sock is not None:
            try:
                self._start(_DISCONNECT, 0)
                self._flush()
            except MQTTConnectionError:
                pass
        self.close()

    def ping(self):
        self._start(_PINGREQ, 0)
        self._flush()
        self._ping_at = time.ticks_ms()
        self._log and self._log("PINGREQ")

    # ---- publish ----

    def _new_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            for s in self._slots:
                if s.pid == self._pid:
                    break
            else:
                return self._pid

    def _send_publish(self, t, msg, retain, qos, pid, dup):
        self._start(_PUBLISH | (8 if dup else 0) | (qos << 1) | (1 if retain else 0),
                    2 + len(t) + (2 if qos else 0) + len(msg))
        self._put16(len(t))
        self._put(t)
        if qos:
            self._put16(pid)
        self._put(msg)
        self._flush()

    def _send_slot(self, s, dup):
        s.sent = time.ticks_ms()
        self._send_publish(s.topic, s.msg, s.retain, 1, s.pid, dup)

    def publish(self, topic, msg, retain=False, qos=0, wait=True):
        # QoS 1 with wait=True returns once PUBACK arrives, retransmitting
        # with DUP every ack_timeout, max_retries times, then raises
        # MQTTTimeoutError. With wait=False it returns the packet id at once;
        # check_msg()/wait_msg() go on retransmitting until PUBACK (see
        # pending()). After MQTTConnectionError the message stays queued and
        # connect()/reconnect() send it again: do not publish it twice.
        t = self._topic(topic, False)
        msg = self._payload(msg, qos)
        if self._sock is None:
            raise MQTTConnectionError("not connected")
        if not qos:
            self._send_publish(t, msg, retain, 0, 0, False)
            return None
        end = time.ticks_add(time.ticks_ms(), self._tmo * (self._retries + 1))
        while True:
            for s in self._slots:
                if not s.pid:
                    break
            else:
                if time.ticks_diff(end, time.ticks_ms()) <= 0:
                    raise MQTTTimeoutError("%d QoS 1 messages still unacknowledged" % len(self._slots))
                self._pump(None)
                continue
            break
        pid = self._new_pid()
        s.pid = pid
        s.topic = t
        s.msg = msg
        s.retain = retain
        s.resends = 0
        s.cap = self._retries + 1 if wait else 0
        try:
            self._send_slot(s, False)
            while wait and s.pid == pid:
                if s.resends >= s.cap - 1 and time.ticks_diff(time.ticks_ms(), s.sent) >= self._tmo:
                    s.free()
                    raise MQTTTimeoutError("no PUBACK for packet %d after %d retransmissions" % (pid, self._retries))
                self._pump(None)
        finally:
            # Left queued by an error: retransmit it until acknowledged.
            s.cap = 0
        return pid

    def _pump(self, wait_ms):
        # One step while waiting for something else: a PUBLISH goes to the
        # callback, else to the bounded queue that wait_msg() empties first.
        if self._step(wait_ms) == _PUBLISH and self._msg:
            if self.cb:
                self._take()
            else:
                if len(self._q) < self._qmax:
                    self._q.append(self._msg)
                else:
                    self.dropped += 1
                self._msg = None

    def pending(self):
        # Packet ids of QoS 1 messages not yet acknowledged.
        p = []
        for s in self._slots:
            if s.pid:
                p.append(s.pid)
        return p

    # ---- subscribe ----

    def _filters(self, topic, qos, what):
        # One filter or a list of them (for SUBSCRIBE also of (filter, qos))
        # as [(filter bytes, qos)]; qos None for UNSUBSCRIBE.
        items = [topic] if isinstance(topic, (str, bytes, bytearray)) else topic
        m = self._lim.get("topics_per_subscribe")
        if not items or (m and len(items) > m):
            raise MQTTLimitError("%d topics in one %s; allowed 1..%d" % (len(items), what, m or 65535))
        enc = []
        for t in items:
            q = qos
            if q is not None:
                if not isinstance(t, (str, bytes, bytearray)):
                    t, q = t
                _qos(q)
            enc.append((self._topic(t, True), q))
        if self._sock is None:
            raise MQTTConnectionError("not connected")
        return enc

    def _subscribe(self, items, b0=_SUBSCRIBE):
        # Sends one SUBSCRIBE (or UNSUBSCRIBE) and waits for its ack;
        # returns SUBACK's codes.
        pid = self._new_pid()
        rem = 2
        for t, q in items:
            rem += 2 + len(t) + (q is not None)
        self._start(b0, rem)
        self._put16(pid)
        for t, q in items:
            self._put16(len(t))
            self._put(t)
            if q is not None:
                self._put(b"\x01" if q else b"\x00")
        self._flush()
        if not self._await(pid):
            raise MQTTTimeoutError("no %s within %d ms" % ("SUBACK" if b0 == _SUBSCRIBE else "UNSUBACK", self._tmo))
        codes = self._codes
        if b0 == _SUBSCRIBE and len(codes) != len(items):
            self._fail(MQTTProtocolError("SUBACK has %d codes for %d topics" % (len(codes), len(items))))
        return codes

    def subscribe(self, topic, qos=0):
        # topic: one filter, or a list of filters or (filter, qos) sent in one
        # SUBSCRIBE. Returns the granted QoS (a list for a list).
        enc = self._filters(topic, qos, "SUBSCRIBE")
        codes = self._subscribe(enc)
        self._subscribed(enc, codes)
        bad = []
        for i in range(len(enc)):
            if codes[i] == 0x80:
                bad.append(enc[i][0])
        if bad:
            raise MQTTSubscribeError(bad)
        return codes[0] if isinstance(topic, (str, bytes, bytearray)) else list(codes)

    def unsubscribe(self, topic):
        enc = self._filters(topic, None, "UNSUBSCRIBE")
        # mqtt.robust stops restoring them even if the UNSUBACK is lost
        self._subscribed(enc, None)
        self._subscribe(enc, _UNSUBSCRIBE)

    def _subscribed(self, items, codes):
        # items: [(filter bytes, qos)] and codes: the SUBACK's, or qos None
        # and codes None for an UNSUBSCRIBE. mqtt.robust keeps the granted
        # filters to restore them after a reconnect.
        pass

    # ---- receive ----

    def wait_msg(self, timeout=None):
        # Wait for one PUBLISH (seconds; None = forever), pinging as needed.
        # Returns (topic, msg) after calling the callback, or None on timeout.
        if self._q:
            self._msg = self._q.pop(0)
            return self._take()
        end = None if timeout is None else time.ticks_add(time.ticks_ms(), int(timeout * 1000))
        while True:
            left = None if end is None else max(0, time.ticks_diff(end, time.ticks_ms()))
            if self._step(left) == _PUBLISH and self._msg:
                return self._take()
            if left == 0:
                return None

    def check_msg(self):
        # Non-blocking: housekeeping plus whatever is already received, up to
        # the first PUBLISH. Loop while it returns a message to drain all.
        return self.wait_msg(0)
