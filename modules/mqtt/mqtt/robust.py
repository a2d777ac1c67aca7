# mqtt.robust: an MQTTClient that survives a lost link, like micropython-lib's
# umqtt.robust over umqtt.simple.
#
#   from mqtt.robust import MQTTClient, Backoff
#   c = MQTTClient("my-thing", p11tls.opener(host), backoff=Backoff(base=1, cap=60))
#   c.connect()
#   ...
#   except mqtt.MQTTConnectionError:
#       c.reconnect()      # retries with backoff; QoS 1 messages not yet
#                          # acknowledged are sent again, subscriptions restored
#
# Everything else is mqtt.MQTTClient's (same arguments, plus backoff).

import time
from . import MQTTClient as _Client, MQTTConnectError, MQTTConnectionError, MQTTError, AWS_LIMITS

try:
    from random import getrandbits
except ImportError:
    def getrandbits(n):
        return 0


class Backoff:
    # reconnect()'s waits: the n-th is d/2 + rand(0..d/2) with
    # d = min(cap, base * 2**n) seconds ("equal jitter": waits grow, never
    # exceed the cap, and a fleet does not retry in step). attempts=None
    # retries until it connects.
    def __init__(self, base=1, cap=60, attempts=None):
        self.base = base
        self.cap = cap
        self.attempts = attempts


class MQTTClient(_Client):
    def __init__(self, client_id, transport, keepalive=60, callback=None, limits=AWS_LIMITS,
                 options=None, backoff=None):
        super().__init__(client_id, transport, keepalive, callback, limits, options)
        b = backoff or Backoff()
        self._bbase = int(b.base * 1000)
        self._bcap = int(b.cap * 1000)
        self.reconnect_attempts = b.attempts
        # Granted subscriptions [(filter bytes, qos)], restored when a
        # connect finds no session on the broker.
        self._subs = []

    def connect(self):
        present = super().connect()
        subs = self._subs
        if not present and subs:
            k = self._lim.get("topics_per_subscribe") or len(subs)
            for i in range(0, len(subs), k):
                self._subscribe(subs[i:i + k])
        return present

    def reconnect(self):
        # connect() until it succeeds, waiting as Backoff says between tries.
        # A CONNACK refusal other than "server unavailable" is raised at once:
        # retrying cannot fix it.
        t = self._transport
        if not callable(t) or hasattr(t, "write"):
            raise MQTTError("reconnect needs a transport callable that opens a new socket")
        n = 0
        while True:
            try:
                return self.connect()
            except MQTTConnectError as e:
                if e.rc != 3:
                    raise
                err = e
            except MQTTConnectionError as e:
                err = e
            n += 1
            if self.reconnect_attempts is not None and n >= self.reconnect_attempts:
                raise err
            d = self._bbase << min(n - 1, 20)
            if d > self._bcap:
                d = self._bcap
            d = d // 2 + (d - d // 2) * getrandbits(16) // 65536
            self._log and self._log("connect attempt %d failed (%s); next in %d ms" % (n, err, d))
            time.sleep_ms(d)

    def _subscribed(self, items, codes):
        subs = self._subs
        for i in range(len(items)):
            t = items[i][0]
            for e in subs:
                if e[0] == t:
                    subs.remove(e)
                    break
            if codes[i] != 0x80:
                subs.append(items[i])

    def _unsubscribed(self, filters):
        self._subs = [e for e in self._subs if e[0] not in filters]
