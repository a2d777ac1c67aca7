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
from . import MQTTClient as _Client, MQTTConnectError, MQTTConnectionError, MQTTError

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
    def __init__(self, *args, backoff=None, **kw):
        super().__init__(*args, **kw)
        self.backoff = backoff or Backoff()
        # Granted subscriptions {filter bytes: qos}, restored when a connect
        # finds no session on the broker.
        self._subs = {}

    def connect(self):
        present = super().connect()
        subs = list(self._subs.items())
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
        b = self.backoff
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
            if b.attempts is not None and n >= b.attempts:
                raise err
            d = min(int(b.base * 1000) << min(n - 1, 20), int(b.cap * 1000))
            d = d // 2 + (d - d // 2) * getrandbits(16) // 65536
            self._log and self._log("connect attempt %d failed (%s); next in %d ms" % (n, err, d))
            time.sleep_ms(d)

    def _subscribed(self, items, codes):
        subs = self._subs
        for i in range(len(items)):
            t = items[i][0]
            if codes is None or codes[i] == 0x80:
                subs.pop(t, None)
            else:
                subs[t] = items[i][1]
