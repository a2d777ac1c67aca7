# fleetprov: AWS IoT fleet provisioning by claim, the device key born in the token.
#
#   import fleetprov
#   r = fleetprov.provision()        # settings from fleet_claim.json (p11board load-claim)
#   r["state"]   "provisioned" (this call registered the board) or "already"
#   r["thing"]   the thing name AWS IoT gave the board
#
# One call does AWS IoT's CreateCertificateFromCsr + RegisterThing flow:
#   1. an EC P-256 key pair is generated in the token ("Fleet New Key"/"Fleet New
#      Pub"), a PKCS#10 request is built on the board and signed by C_Sign (p11csr);
#   2. MQTT over TLS with the claim identity ("Claim Key"/"Claim Cert", the TLS
#      handshake signed in the token by p11tls);
#   3. $aws/certificates/create-from-csr/json -> certificateId, certificatePem,
#      certificateOwnershipToken; the certificate is checked against the new key
#      and stored as "Fleet New Cert";
#   4. $aws/provisioning-templates/<template>/provision/json -> thingName,
#      deviceConfiguration;
#   5. commit: thing name and endpoint into the board's config
#      (aws_clientcredential.json, as `p11board config` writes it), then the new
#      certificate and key take the device labels ("Device Cert", "Device Pub TLS
#      Key", and last "Device Priv TLS Key");
#   6. MQTT with the new identity (client id = thing name): subscribe, publish a
#      first message, receive it; optionally destroy the claim key and certificate.
#
# Power cuts. Progress is kept in the token (labels) and in fleet_state.json in the
# token directory (replaced atomically, like the token's records):
#   no state file        -> leftovers of an interrupted run ("Fleet New *") are
#                           destroyed and the flow starts again from step 1;
#   stage "cert"         -> certificate stored with its ownership token: the next
#                           call goes on with RegisterThing (from step 1 again if
#                           AWS refuses the token, e.g. after its hour);
#   stage "registered"   -> AWS registered the thing: the next call only commits,
#                           offline.
# "Device Priv TLS Key" is the last label set, after its certificate is "Device
# Cert": a cut at any point leaves either the claim identity (and no device key)
# or the complete new identity; never a device key without its certificate.
#
# Errors: Rejected (.api, .status_code, .error_code, .error_message) for a
# rejected payload, Timeout when no answer came in time, NotConfigured when the
# token lacks the claim identity or the settings, FleetError for the rest (the
# connection's own error is in .cause). Retry and backoff are the caller's:
# retry_delay() and provision_until_done() implement the documented policy
# (docs/fleet-provisioning.md): a 4xx rejection other than 429 is final.

from micropython import const
import json
import os
import time
import pkcs11
from pkcs11 import labels
from pkcs11.store import replace_file

CLAIM_FILE = "fleet_claim.json"
STATE_FILE = "fleet_state.json"
CONFIG_FILE = "aws_clientcredential.json"

NEW_KEY = b"Fleet New Key"
NEW_PUB = b"Fleet New Pub"
NEW_CERT = b"Fleet New Cert"

CSR_TOPIC = "$aws/certificates/create-from-csr/json"
PROVISION_TOPIC = "$aws/provisioning-templates/%s/provision/json"
FIRST_TOPIC = "things/%s/provisioned"

_CKO_CERTIFICATE = const(1)
_CKO_PUBLIC_KEY = const(2)
_CKO_PRIVATE_KEY = const(3)
_CKA_LABEL = const(0x3)
_CKA_VALUE = const(0x11)
_CKA_KEY_TYPE = const(0x100)
_CKA_MODULUS = const(0x120)
_CKA_EC_POINT = const(0x181)
_CKK_EC = const(3)

# Test hook, like pkcs11.store.fault: fault(step) is called at every step
# boundary (names in the docs); a test makes it cut the power there.
fault = None


class FleetError(Exception):
    """Fleet provisioning failed; .cause holds the underlying error, if any."""

    def __init__(self, msg, cause=None):
        super().__init__(msg)
        self.cause = cause


class NotConfigured(FleetError):
    pass


class Timeout(FleetError):
    pass


class Rejected(FleetError):
    """AWS IoT answered on a .../rejected topic."""

    def __init__(self, api, status_code, error_code, error_message):
        super().__init__("%s rejected: %s %s: %s" % (api, status_code, error_code, error_message))
        self.api = api
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = error_message

    @property
    def final(self):
        """True for a rejection that retrying cannot fix (4xx but 429)."""
        s = self.status_code
        return isinstance(s, int) and 400 <= s < 500 and s != 429


def _step(name, log):
    if log:
        log(name)
    if fault:
        fault(name)


# -- files in the token directory ---------------------------------------------------

def _dir():
    from pkcs11 import config
    return config.token_dir()


def read_json(name):
    """A JSON file of the token directory as a dict; None when absent or unreadable."""
    try:
        with open(_dir() + "/" + name) as f:
            v = json.load(f)
    except (OSError, ValueError):
        return None
    return v if isinstance(v, dict) else None


def write_json(name, obj):
    """Atomically replace a JSON file of the token directory (temp file, rename)."""
    replace_file(_dir() + "/" + name, json.dumps(obj))


def _remove(name):
    try:
        os.remove(_dir() + "/" + name)
    except OSError:
        pass


# -- token helpers -------------------------------------------------------------------

def _find(s, label, cls):
    return s.find_objects(object_class=cls, label=label)


def _one(s, label, cls):
    found = _find(s, label, cls)
    if len(found) > 1:
        raise FleetError("several objects labelled %r in the token" % (label,))
    return found[0] if found else None


def _destroy(s, label, cls):
    for o in _find(s, label, cls):
        o.destroy()


def _key_public(key):
    # ("ec", point) or ("rsa", modulus): what a certificate must carry.
    if key[_CKA_KEY_TYPE] == _CKK_EC:
        q = key[_CKA_EC_POINT]
        if len(q) == 67 and q[0] == 0x04:
            q = q[2:]
        return "ec", bytes(q)
    return "rsa", bytes(key[_CKA_MODULUS])


def _cert_public(cert_data):
    from pkcs11 import crypto
    pk = crypto.parse_certificate(cert_data)["public_key"]
    if not pk:
        return None
    return pk["type"], bytes(pk["q"] if pk["type"] == "ec" else pk["n"])


def _matches(key, cert):
    try:
        return _key_public(key) == _cert_public(cert[_CKA_VALUE])
    except (ValueError, IndexError, TypeError, pkcs11.PKCS11Error):
        return False


def device_identity(s):
    """True when the token holds exactly one "Device Priv TLS Key" and one "Device
    Cert" for it (s: a pkcs11.Session)."""
    k = _find(s, labels.LABEL_DEVICE_PRIVATE_KEY, _CKO_PRIVATE_KEY)
    c = _find(s, labels.LABEL_DEVICE_CERTIFICATE, _CKO_CERTIFICATE)
    return len(k) == 1 and len(c) == 1 and _matches(k[0], c[0])


def _cleanup(s):
    # Leftovers of an interrupted run: no key piles up across retries.
    _remove(STATE_FILE)
    _destroy(s, NEW_KEY, _CKO_PRIVATE_KEY)
    _destroy(s, NEW_PUB, _CKO_PUBLIC_KEY)
    _destroy(s, NEW_CERT, _CKO_CERTIFICATE)


# -- MQTT request/response -------------------------------------------------------------

def _request(c, topic, payload, timeout_ms, api, accept=None):
    acc = topic + "/accepted"
    rej = topic + "/rejected"
    c.subscribe([(acc, 1), (rej, 1)])
    c.publish(topic, payload, qos=1)
    payload = None
    acc = acc.encode()
    rej = rej.encode()
    end = time.ticks_add(time.ticks_ms(), timeout_ms)
    while True:
        left = time.ticks_diff(end, time.ticks_ms())
        if left <= 0:
            raise Timeout("%s: no answer on %s/accepted or /rejected within %d ms"
                          % (api, topic, timeout_ms))
        m = c.wait_msg(left / 1000)
        if m is None:
            continue
        t = bytes(m[0])
        if t != acc and t != rej:
            continue
        try:
            d = json.loads(m[1])
        except ValueError:
            d = None
        m = None
        if not isinstance(d, dict):
            raise FleetError("%s: the answer on %s is not a JSON object" % (api, t.decode()))
        if t == rej:
            raise Rejected(api, d.get("statusCode"), d.get("errorCode"), d.get("errorMessage"))
        if accept is None or accept(d):
            return d
        # an answer meant for another board of the batch (the broker shares topics)


def _client(client_id, host, port, server_name, keepalive, timeout_ms, session, key_label,
            cert_label, what):
    import p11tls
    from mqtt import MQTTClient, Options

    c = MQTTClient(client_id, p11tls.opener(host, port, server_hostname=server_name or host,
                                            session=session, key_label=key_label,
                                            cert_label=cert_label),
                   keepalive=keepalive, options=Options(ack_timeout=max(1, timeout_ms // 1000)))
    try:
        c.connect()
    except Exception as e:
        c.close()
        raise FleetError("cannot connect to %s:%d with the %s identity: %s" % (host, port, what, e), e)
    return c


# -- settings ------------------------------------------------------------------------

def _settings(kw):
    claim = read_json(CLAIM_FILE) or {}
    st = {}
    for k, default in (("template", None), ("endpoint", None), ("port", 8883),
                       ("server_name", None), ("parameters", None), ("client_id", None),
                       ("first_topic", None)):
        v = kw.get(k)
        if v is None:
            v = claim.get(k, default)
        st[k] = v
    p = dict(st["parameters"] or {})
    if "SerialNumber" not in p:
        try:
            import machine
            import binascii
            p["SerialNumber"] = binascii.hexlify(machine.unique_id()).decode()
        except (ImportError, AttributeError):
            pass
    st["parameters"] = p
    return st


def _need(st, *names):
    for n in names:
        if not st.get(n):
            raise NotConfigured("no %s: load the claim settings (p11board load-claim) or pass %s="
                                % (n, n))


# -- the flow --------------------------------------------------------------------------

def _new_request(s, st, log):
    # Step 1: the new key pair, born in the token, and its CSR.
    import p11csr

    _cleanup(s)
    _step("cleanup", log)
    kid = s.generate_random(8)
    pub, key = s.generate_keypair(label=NEW_KEY, public_label=NEW_PUB, id=kid)
    _step("keygen", log)
    cn = st["parameters"].get("SerialNumber") or st["client_id"] or _hex(kid)
    csr = p11csr.pem(p11csr.make_csr(s, key, [("CN", cn)], pub=pub))
    _step("csr", log)
    return key, kid, csr


def _hex(b):
    import binascii
    return binascii.hexlify(b).decode()


def _create_cert(s, c, key, kid, csr, timeout_ms, log):
    # Step 3: CreateCertificateFromCsr; the certificate must carry our key.
    want = _key_public(key)

    def ours(d):
        pem = d.get("certificatePem")
        if not pem or not d.get("certificateOwnershipToken"):
            raise FleetError("CreateCertificateFromCsr: the answer lacks certificatePem or "
                             "certificateOwnershipToken")
        try:
            return _cert_public(pem.encode()) == want
        except (ValueError, IndexError):
            raise FleetError("CreateCertificateFromCsr: certificatePem is not a certificate")

    d = _request(c, CSR_TOPIC, json.dumps({"certificateSigningRequest": csr}), timeout_ms,
                 "CreateCertificateFromCsr", ours)
    _step("cert-accepted", log)
    s.import_certificate(d["certificatePem"].encode(), label=NEW_CERT, id=kid)
    _step("cert-stored", log)
    return d["certificateOwnershipToken"], d.get("certificateId")


def _register(c, st, token, timeout_ms, log):
    # Step 4: RegisterThing with the template.
    topic = PROVISION_TOPIC % st["template"]
    d = _request(c, topic, json.dumps({"certificateOwnershipToken": token,
                                       "parameters": st["parameters"]}),
                 timeout_ms, "RegisterThing")
    thing = d.get("thingName")
    if not thing:
        raise FleetError("RegisterThing: the answer has no thingName")
    _step("registered", log)
    return thing, d.get("deviceConfiguration") or {}


def _commit(s, state, log):
    # Step 5: the new identity becomes the device identity. Every step can run
    # again after a cut. The device key is labelled last.
    key = _one(s, NEW_KEY, _CKO_PRIVATE_KEY)
    cert = _one(s, NEW_CERT, _CKO_CERTIFICATE)
    pub = _one(s, NEW_PUB, _CKO_PUBLIC_KEY)
    if key is not None:
        # the old device key (if any) goes first: a certificate alone is harmless
        _destroy(s, labels.LABEL_DEVICE_PRIVATE_KEY, _CKO_PRIVATE_KEY)
    if pub is not None:
        _destroy(s, labels.LABEL_DEVICE_PUBLIC_KEY, _CKO_PUBLIC_KEY)
    if cert is not None:
        _destroy(s, labels.LABEL_DEVICE_CERTIFICATE, _CKO_CERTIFICATE)
    _step("commit-cleared", log)
    cfg = read_json(CONFIG_FILE) or {}
    cfg["endpoint"] = state["endpoint"]
    cfg["port"] = state["port"]
    cfg["thing_name"] = state["thing"]
    if state.get("server_name"):
        cfg["server_name"] = state["server_name"]
    if state.get("device_configuration"):
        cfg["device_configuration"] = state["device_configuration"]
    write_json(CONFIG_FILE, cfg)
    _step("commit-config", log)
    if cert is not None:
        cert[_CKA_LABEL] = labels.LABEL_DEVICE_CERTIFICATE
        _step("commit-cert", log)
    if pub is not None:
        pub[_CKA_LABEL] = labels.LABEL_DEVICE_PUBLIC_KEY
        _step("commit-pub", log)
    if key is not None:
        key[_CKA_LABEL] = labels.LABEL_DEVICE_PRIVATE_KEY
        _step("commit-key", log)
    if not device_identity(s):
        raise FleetError("the committed identity is incomplete")
    _remove(STATE_FILE)
    _step("committed", log)


def _pending_ok(s):
    # "Fleet New Key" with its certificate "Fleet New Cert"
    key = _one(s, NEW_KEY, _CKO_PRIVATE_KEY)
    cert = _one(s, NEW_CERT, _CKO_CERTIFICATE)
    return key is not None and cert is not None and _matches(key, cert)


def _committable(s):
    # the new key, pending or already labelled, with its certificate
    key = _one(s, NEW_KEY, _CKO_PRIVATE_KEY) or _one(s, labels.LABEL_DEVICE_PRIVATE_KEY,
                                                        _CKO_PRIVATE_KEY)
    cert = _one(s, NEW_CERT, _CKO_CERTIFICATE) or _one(s, labels.LABEL_DEVICE_CERTIFICATE,
                                                          _CKO_CERTIFICATE)
    return key is not None and cert is not None and _matches(key, cert)


def _first_message(s, st, thing, timeout_ms, keepalive, log):
    # Step 6: the new identity works: subscribe, publish, receive.
    c = _client(thing, st["endpoint"], st["port"], st["server_name"], keepalive, timeout_ms, s,
                labels.LABEL_DEVICE_PRIVATE_KEY, labels.LABEL_DEVICE_CERTIFICATE, "new")
    try:
        _step("device-connected", log)
        topic = st["first_topic"] or FIRST_TOPIC
        if "%s" in topic:
            topic = topic % thing
        c.subscribe(topic, qos=1)
        msg = json.dumps({"thingName": thing, "event": "provisioned"})
        c.publish(topic, msg, qos=1)
        _step("published", log)
        end = time.ticks_add(time.ticks_ms(), timeout_ms)
        while True:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                raise Timeout("the first message on %s did not come back within %d ms"
                              % (topic, timeout_ms))
            m = c.wait_msg(left / 1000)
            if m is not None and bytes(m[0]) == topic.encode() and bytes(m[1]) == msg.encode():
                break
        c.disconnect()
    finally:
        c.close()
    _step("verified", log)
    return topic


def provision(template=None, parameters=None, endpoint=None, port=None, server_name=None,
              client_id=None, first_topic=None, timeout=10, keepalive=60, destroy_claim=False,
              pin=None, log=None):
    """Provision this board by claim (see the module comment); returns a dict:
    state ("provisioned" or "already"), thing, and for "provisioned" also
    device_configuration, certificate_id (None when resumed) and topic.
    Arguments left None come from fleet_claim.json in the token directory."""
    st = _settings({"template": template, "parameters": parameters, "endpoint": endpoint,
                    "port": port, "server_name": server_name, "client_id": client_id,
                    "first_topic": first_topic})
    tmo = int(timeout * 1000)
    cert_id = None
    with pkcs11.open_session(rw=True, user_pin=pin) as s:
        _step("start", log)
        state = read_json(STATE_FILE)
        stage = state.get("stage") if state else None
        if stage == "registered" and not _committable(s):
            stage = None
        if stage is None:
            cfg = read_json(CONFIG_FILE) or {}
            if cfg.get("thing_name") and device_identity(s):
                return {"state": "already", "thing": cfg["thing_name"]}
        if stage != "registered":
            if _one(s, labels.LABEL_CLAIM_PRIVATE_KEY, _CKO_PRIVATE_KEY) is None or \
                    _one(s, labels.LABEL_CLAIM_CERTIFICATE, _CKO_CERTIFICATE) is None:
                raise NotConfigured("the token has no claim identity (%r and %r): load it with "
                                    "p11board load-claim" % (labels.LABEL_CLAIM_PRIVATE_KEY,
                                                            labels.LABEL_CLAIM_CERTIFICATE))
            _need(st, "template", "endpoint")
            if stage == "cert" and not _pending_ok(s):
                stage = None
            state = _claim_flow(s, st, state if stage == "cert" else None, tmo, keepalive, log)
            cert_id = state.get("certificate_id")
        else:
            # settings of the run that registered (the call's own may differ)
            for k in ("endpoint", "port", "server_name"):
                st[k] = state.get(k, st[k])
        _commit(s, state, log)
        thing = state["thing"]
        topic = _first_message(s, st, thing, tmo, keepalive, log)
        if destroy_claim:
            _destroy(s, labels.LABEL_CLAIM_PRIVATE_KEY, _CKO_PRIVATE_KEY)
            _destroy(s, labels.LABEL_CLAIM_CERTIFICATE, _CKO_CERTIFICATE)
            _step("claim-destroyed", log)
        return {"state": "provisioned", "thing": thing, "topic": topic,
                "device_configuration": state.get("device_configuration") or {},
                "certificate_id": cert_id}


def _claim_flow(s, st, resume, tmo, keepalive, log):
    # Steps 1-4 over the claim connection; returns the "registered" state.
    if resume is None:
        key, kid, csr = _new_request(s, st, log)
    cid = st["client_id"] or st["parameters"].get("SerialNumber") or _hex(s.generate_random(6))
    c = _client(cid, st["endpoint"], st["port"], st["server_name"], keepalive, tmo, s,
                labels.LABEL_CLAIM_PRIVATE_KEY, labels.LABEL_CLAIM_CERTIFICATE, "claim")
    try:
        _step("claim-connected", log)
        if resume is None:
            token, cert_id = _create_cert(s, c, key, kid, csr, tmo, log)
            key = csr = None
            write_json(STATE_FILE, {"stage": "cert", "token": token, "certificate_id": cert_id,
                                    "template": st["template"]})
            _step("cert-state", log)
        else:
            token, cert_id = resume["token"], resume.get("certificate_id")
        try:
            thing, devcfg = _register(c, st, token, tmo, log)
        except Rejected as e:
            if resume is None or e.error_code != "InvalidCertificateOwnershipToken":
                raise
            # the stored token expired: start again from step 1, once
            log and log("ownership token refused (%s): new key and certificate" % e.error_message)
            key, kid, csr = _new_request(s, st, log)
            token, cert_id = _create_cert(s, c, key, kid, csr, tmo, log)
            key = csr = None
            thing, devcfg = _register(c, st, token, tmo, log)
        state = {"stage": "registered", "thing": thing, "device_configuration": devcfg,
                 "certificate_id": cert_id, "endpoint": st["endpoint"], "port": st["port"],
                 "server_name": st["server_name"]}
        write_json(STATE_FILE, state)
        _step("registered-state", log)
        c.disconnect()
        _step("claim-closed", log)
        return state
    except Rejected:
        # AWS said no: nothing to resume; leave the claim identity only
        _cleanup(s)
        raise
    except FleetError:
        raise
    except Exception as e:
        raise FleetError("the claim connection failed: %r" % (e,), e)
    finally:
        c.close()


# -- retry policy ------------------------------------------------------------------------

def retry_delay(attempt, base=5, cap=300):
    """Seconds to wait before retry number `attempt` (1, 2, ...): exponential with
    equal jitter, d/2 + rand(0..d/2) with d = min(cap, base * 2**(attempt-1))."""
    try:
        from random import getrandbits
        r = getrandbits(16)
    except ImportError:
        r = 32768
    d = min(cap, base << min(attempt - 1, 16))
    return d / 2 + (d / 2) * r / 65536


def provision_until_done(attempts=5, base=5, cap=300, sleep=None, **kw):
    """provision() with the documented policy: retry after Timeout, connection
    failures and retryable rejections (429, 5xx), waiting retry_delay() seconds
    (with sleep(seconds), time.sleep by default); raise at once a final rejection
    (4xx but 429) or NotConfigured."""
    n = 0
    while True:
        try:
            return provision(**kw)
        except NotConfigured:
            raise
        except Rejected as e:
            if e.final:
                raise
            err = e
        except FleetError as e:
            err = e
        n += 1
        if n >= attempts:
            raise err
        d = retry_delay(n, base, cap)
        log = kw.get("log")
        log and log("attempt %d failed (%s); next in %.1f s" % (n, err, d))
        (sleep or time.sleep)(d)
