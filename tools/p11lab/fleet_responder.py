"""A local stand-in for AWS IoT Core's fleet provisioning MQTT API, on mosquitto.

Two parts, both on 127.0.0.1 only:

* `FleetBroker`: Debian's mosquitto (p11lab.mosquitto) with mutual TLS (the client certificate's CN is
  the identity, like a certificate in AWS IoT) and an ACL file standing in for the
  IoT policies: the claim identity may use only the fleet provisioning topics, the
  responder only their other ends, and each registered thing only
  ``things/<thingName>/#``. Registering a thing appends its rule to the ACL file and
  makes mosquitto reload it (SIGHUP), as AWS attaches a policy to the new
  certificate. Stopped by its PID.

* `FleetResponder`: a paho-mqtt client that implements the two APIs as AWS
  documents them (JSON payload format):

  - ``$aws/certificates/create-from-csr/json`` with ``{"certificateSigningRequest"}``
    -> ``.../accepted`` ``{"certificateId", "certificatePem",
    "certificateOwnershipToken"}``; the CSR's signature is checked and the local CA
    signs it; the certificate is PENDING_ACTIVATION until registered;
  - ``$aws/provisioning-templates/<name>/provision/json`` with
    ``{"certificateOwnershipToken", "parameters"}`` -> ``.../accepted``
    ``{"deviceConfiguration", "thingName"}``; the ownership token is valid only for
    the certificate it was issued with and only for `token_ttl` seconds (AWS: one
    hour); the template's parameters are checked (required ones, types), then the
    pre-provisioning hook runs and may refuse or override parameters.

  Refusals go to ``.../rejected`` as ``{"statusCode", "errorCode", "errorMessage"}``:
  400 InvalidPayload (not JSON, fields missing), 400 InvalidCsr, 404 NotFound
  (unknown template), 400 InvalidCertificateOwnershipToken (unknown, expired, or its
  certificate gone), 400 InvalidParameters (the template refuses the parameters),
  403 AccessDenied (the pre-provisioning hook said no), 500 InternalFailure.

Templates are AWS provisioning template bodies (the JSON of
``aws iot create-provisioning-template --template-body``), of which this evaluates
``Parameters`` (Type String/Number, Default), ``Resources`` of type
``AWS::IoT::Thing`` (ThingName, AttributePayload), ``AWS::IoT::Certificate``
(Status) and ``AWS::IoT::Policy`` (kept as given), and ``DeviceConfiguration``;
values may be literals, ``{"Ref": name}``, ``{"Fn::Join": [sep, [...]]}`` or
``{"Fn::Sub": "text ${name}"}``.

Note: mosquitto delivers a response to every client subscribed to the response
topic, where AWS answers only the connection that asked; run one board of a claim
at a time against this stand-in (the device module also ignores certificates that
are not for its key).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from .errors import BrokerError, ResponderError
from .mosquitto import Mosquitto, TLSListener

CSR_TOPIC = "$aws/certificates/create-from-csr/json"
PROVISION_PREFIX = "$aws/provisioning-templates/"
PROVISION_SUFFIX = "/provision/json"

# The hook: hook(template_name, parameters) -> {"allowProvisioning": bool,
# "parameterOverrides": {...}} (the payload of AWS's pre-provisioning Lambda).
Hook = Callable[[str, dict[str, str]], dict[str, Any]]


class Refusal(Exception):
    """A refusal, answered on the .../rejected topic."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.payload = {"statusCode": status, "errorCode": code, "errorMessage": message}


# ---------------------------------------------------------------- templates


def _evaluate(expr: Any, params: dict[str, str]) -> Any:
    if isinstance(expr, str) or isinstance(expr, (int, float, bool)) or expr is None:
        return expr
    if isinstance(expr, list):
        return [_evaluate(e, params) for e in expr]
    if isinstance(expr, dict) and len(expr) == 1:
        (op, arg), = expr.items()
        if op == "Ref":
            if arg not in params:
                raise Refusal(400, "InvalidParameters", f"parameter {arg!r} has no value")
            return params[arg]
        if op == "Fn::Join":
            sep, parts = arg
            return sep.join(str(_evaluate(p, params)) for p in parts)
        if op == "Fn::Sub":
            def sub(m: re.Match[str]) -> str:
                if m.group(1) not in params:
                    raise Refusal(400, "InvalidParameters", f"parameter {m.group(1)!r} has no value")
                return str(params[m.group(1)])
            return re.sub(r"\$\{([^}]+)\}", sub, arg)
    if isinstance(expr, dict):
        return {k: _evaluate(v, params) for k, v in expr.items()}
    raise Refusal(500, "InternalFailure", f"template expression not understood: {expr!r}")


@dataclass
class Template:
    """An AWS IoT provisioning template body (a dict, as JSON has it)."""

    name: str
    body: dict[str, Any]
    enabled: bool = True

    def parameters(self, given: dict[str, Any]) -> dict[str, str]:
        """The template's parameters from the request: defaults filled in, required
        ones present, types checked. Raises Refusal."""
        declared: dict[str, Any] = self.body.get("Parameters", {})
        out: dict[str, str] = {}
        for name, spec in declared.items():
            if name in given:
                v = given[name]
                if not isinstance(v, str):
                    raise Refusal(400, "InvalidParameters", f"parameter {name!r} must be a string")
                if spec.get("Type", "String") == "Number":
                    try:
                        float(v)
                    except ValueError:
                        raise Refusal(400, "InvalidParameters", f"parameter {name!r} must be a number") from None
                out[name] = v
            elif "Default" in spec:
                out[name] = str(spec["Default"])
            else:
                raise Refusal(400, "InvalidParameters", f"required parameter {name!r} is missing")
        return out

    def provision(self, params: dict[str, str]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(thingName, deviceConfiguration, thing attributes) for these parameters."""
        thing = None
        attributes: dict[str, Any] = {}
        for res in self.body.get("Resources", {}).values():
            if res.get("Type") == "AWS::IoT::Thing":
                props = res.get("Properties", {})
                thing = _evaluate(props.get("ThingName"), params)
                attributes = _evaluate(props.get("AttributePayload", {}), params)
        if not thing or not re.fullmatch(r"[A-Za-z0-9:_-]{1,128}", str(thing)):
            raise Refusal(400, "InvalidParameters", f"the template gives no valid thing name ({thing!r})")
        config = _evaluate(self.body.get("DeviceConfiguration", {}), params)
        return str(thing), config, attributes


# ---------------------------------------------------------------- responder


@dataclass
class Certificate:
    certificate_id: str
    pem: str
    cn: str
    status: str = "PENDING_ACTIVATION"
    thing: str | None = None


@dataclass
class Thing:
    name: str
    attributes: dict[str, Any]
    certificates: list[str] = field(default_factory=list)


class FleetResponder:
    """The fleet provisioning API on a broker (see the module docstring).

    ca: an object with sign_csr(csr_pem: bytes) -> an object with .cert (an
    x509.Certificate), e.g. p11lab.localca.LocalCA. tls: (cafile, certfile, keyfile)
    of the responder's own client identity. on_register(thing, certificate) runs
    after a thing is registered, before the answer is sent (FleetBroker.allow_thing
    attaches the policy there)."""

    def __init__(self, host: str, port: int, ca: Any, templates: list[Template],
                 tls: tuple[Path, Path, Path], *, client_id: str = "fleet-responder",
                 token_ttl: float = 3600.0, hook: Hook | None = None,
                 on_register: Callable[[Thing, Certificate], None] | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.host, self.port = host, port
        self.ca = ca
        self.templates = {t.name: t for t in templates}
        self.token_ttl = token_ttl
        self.hook = hook
        self.on_register = on_register
        self.log = log or (lambda text: None)
        self.certificates: dict[str, Certificate] = {}
        self.things: dict[str, Thing] = {}
        self.tokens: dict[str, tuple[str, float]] = {}
        self.requests: list[tuple[str, str]] = []   # (api, outcome) in order
        # APIs that get no answer at all (to test the device's timeout)
        self.silent: set[str] = set()
        # APIs refused outright: {api: (statusCode, errorCode, errorMessage)}, e.g.
        # throttling (429) or an outage (503)
        self.refuse: dict[str, tuple[int, str, str]] = {}
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        cafile, certfile, keyfile = tls
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv311)
        self.client.tls_set(ca_certs=str(cafile), certfile=str(certfile), keyfile=str(keyfile),
                            tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # -- lifecycle

    def start(self, timeout: float = 10) -> "FleetResponder":
        try:
            self.client.connect(self.host, self.port, keepalive=60)
        except OSError as e:
            raise ResponderError(f"the fleet responder cannot reach the broker {self.host}:{self.port}: "
                                 f"{e}") from e
        self.client.loop_start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ResponderError("the fleet responder could not connect and subscribe to the broker "
                                 f"{self.host}:{self.port}: {self.errors or 'no answer'}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.errors.append(ResponderError(f"responder CONNECT refused: {rc}"))
            return
        client.subscribe([(CSR_TOPIC, 1), (PROVISION_PREFIX + "+" + PROVISION_SUFFIX, 1)])

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        if any(c.is_failure for c in codes):
            self.errors.append(ResponderError(f"responder SUBSCRIBE refused: {codes}"))
            return
        self._ready.set()

    # -- the APIs

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        topic = msg.topic
        if topic == CSR_TOPIC:
            api, handler = "CreateCertificateFromCsr", self._create_from_csr
        elif topic.startswith(PROVISION_PREFIX) and topic.endswith(PROVISION_SUFFIX):
            api = "RegisterThing"
            name = topic[len(PROVISION_PREFIX):-len(PROVISION_SUFFIX)]
            handler = lambda payload: self._register(name, payload)  # noqa: E731
        else:
            return
        if api in self.silent:
            self.requests.append((api, "ignored"))
            self.log(f"{api}: not answering (silent)")
            return
        try:
            with self._lock:
                if api in self.refuse:
                    raise Refusal(*self.refuse[api])
                try:
                    payload = json.loads(msg.payload)
                    if not isinstance(payload, dict):
                        raise ValueError
                except ValueError:
                    raise Refusal(400, "InvalidPayload", "the payload is not a JSON object") from None
                answer = handler(payload)
            self.requests.append((api, "accepted"))
            self.log(f"{api}: accepted")
            client.publish(topic + "/accepted", json.dumps(answer), qos=1)
        except Refusal as r:
            self.requests.append((api, r.payload["errorCode"]))
            self.log(f"{api}: rejected {r.payload['statusCode']} {r.payload['errorCode']}: {r}")
            client.publish(topic + "/rejected", json.dumps(r.payload), qos=1)
        except Exception as e:  # noqa: BLE001 - answered and recorded for the test
            self.errors.append(e)
            client.publish(topic + "/rejected", json.dumps(
                {"statusCode": 500, "errorCode": "InternalFailure", "errorMessage": str(e)}), qos=1)

    def _create_from_csr(self, payload: dict[str, Any]) -> dict[str, Any]:
        csr_pem = payload.get("certificateSigningRequest")
        if not isinstance(csr_pem, str) or not csr_pem:
            raise Refusal(400, "InvalidPayload", "certificateSigningRequest is missing")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise Refusal(400, "InvalidCsr", "certificateSigningRequest is not a PEM PKCS#10 request") from None
        if not csr.is_signature_valid:
            raise Refusal(400, "InvalidCsr", "the request's signature does not verify")
        issued = self.ca.sign_csr(csr_pem.encode())
        cert: x509.Certificate = issued.cert
        der = cert.public_bytes(serialization.Encoding.DER)
        cert_id = hashlib.sha256(der).hexdigest()   # as AWS: the certificate's SHA-256
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.certificates[cert_id] = Certificate(cert_id, pem, str(cn[0].value) if cn else "")
        token = base64.b64encode(secrets.token_bytes(96)).decode()
        self.tokens[token] = (cert_id, time.monotonic() + self.token_ttl)
        return {"certificateId": cert_id, "certificatePem": pem, "certificateOwnershipToken": token}

    def _register(self, template_name: str, payload: dict[str, Any]) -> dict[str, Any]:
        template = self.templates.get(template_name)
        if template is None or not template.enabled:
            raise Refusal(404, "NotFound", f"no enabled provisioning template {template_name!r}")
        token = payload.get("certificateOwnershipToken")
        if not isinstance(token, str) or not token:
            raise Refusal(400, "InvalidCertificateOwnershipToken", "Certificate ownership token cannot be empty.")
        entry = self.tokens.get(token)
        if entry is None:
            raise Refusal(400, "InvalidCertificateOwnershipToken", "the certificate ownership token is not valid")
        cert_id, expires = entry
        if time.monotonic() > expires:
            raise Refusal(400, "InvalidCertificateOwnershipToken", "the certificate ownership token has expired")
        cert = self.certificates.get(cert_id)
        if cert is None:
            raise Refusal(400, "InvalidCertificateOwnershipToken", "the token's certificate no longer exists")
        given = payload.get("parameters", {})
        if not isinstance(given, dict):
            raise Refusal(400, "InvalidPayload", "parameters must be a JSON object")
        # AWS fills in the certificate's id itself
        params = template.parameters({**given, "AWS::IoT::Certificate::Id": cert_id})
        if self.hook is not None:
            verdict = self.hook(template_name, dict(params))
            if not verdict.get("allowProvisioning"):
                raise Refusal(403, "AccessDenied", "the pre-provisioning hook refused the request")
            params.update({k: str(v) for k, v in (verdict.get("parameterOverrides") or {}).items()})
        thing_name, config, attributes = template.provision(params)
        if cert.thing is not None and cert.thing != thing_name:
            raise Refusal(400, "InvalidCertificateOwnershipToken",
                          f"the certificate is already registered to {cert.thing!r}")
        thing = self.things.get(thing_name)
        if thing is None:
            thing = self.things[thing_name] = Thing(thing_name, attributes)
        if cert_id not in thing.certificates:
            thing.certificates.append(cert_id)
        cert.thing = thing_name
        cert.status = "ACTIVE"
        if self.on_register is not None:
            self.on_register(thing, cert)
        return {"deviceConfiguration": config, "thingName": thing_name}

    # -- for tests and the demo

    def count(self, api: str, outcome: str = "accepted") -> int:
        return sum(1 for a, o in self.requests if a == api and o == outcome)

    def expire_tokens(self) -> None:
        """Every ownership token issued so far expires now (as after AWS's hour)."""
        with self._lock:
            self.tokens = {t: (c, 0.0) for t, (c, _) in self.tokens.items()}


# ---------------------------------------------------------------- broker


CLAIM_RULES = """\
topic write $aws/certificates/create-from-csr/json
topic read $aws/certificates/create-from-csr/json/accepted
topic read $aws/certificates/create-from-csr/json/rejected
topic write $aws/provisioning-templates/{template}/provision/json
topic read $aws/provisioning-templates/{template}/provision/json/accepted
topic read $aws/provisioning-templates/{template}/provision/json/rejected
"""

RESPONDER_RULES = """\
topic read $aws/certificates/create-from-csr/json
topic write $aws/certificates/create-from-csr/json/accepted
topic write $aws/certificates/create-from-csr/json/rejected
topic read $aws/provisioning-templates/+/provision/json
topic write $aws/provisioning-templates/+/provision/json/accepted
topic write $aws/provisioning-templates/+/provision/json/rejected
"""

THING_RULES = "topic readwrite things/{thing}/#\n"


class FleetBroker:
    """mosquitto (p11lab.mosquitto) on 127.0.0.1 with mutual TLS and the fleet
    provisioning ACLs.

    claims: {claim certificate CN: template name}; responder: the responder's CN."""

    def __init__(self, workdir: Path, cafile: Path, certfile: Path, keyfile: Path,
                 claims: dict[str, str], responder: str = "fleet-responder",
                 port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.acl_path = self.workdir / "acl"
        self._acl_lock = threading.Lock()
        acl = ["# fleet provisioning ACLs (the stand-in for AWS IoT policies)"]
        for cn, template in claims.items():
            acl += [f"\n# claim identity: fleet provisioning topics only\nuser {cn}",
                    CLAIM_RULES.format(template=template)]
        acl += [f"\n# the fleet provisioning service\nuser {responder}", RESPONDER_RULES]
        acl.append("\n# registered things: their own topics only (appended at registration)")
        self.acl_path.write_text("\n".join(acl) + "\n")
        self.mosquitto = Mosquitto(
            self.workdir, plain=False, allow_anonymous=False,
            tls=TLSListener(cafile=cafile, certfile=certfile, keyfile=keyfile, port=port,
                            extra=["tls_version tlsv1.2"]),
            extra=[f"acl_file {self.acl_path}"])

    @property
    def port(self) -> int:
        return self.mosquitto.tls_port

    @property
    def pid(self) -> int | None:
        return self.mosquitto.pid

    @property
    def log_path(self) -> Path:
        return self.mosquitto.log_path

    def start(self, timeout: float = 10) -> "FleetBroker":
        self.mosquitto.start(timeout)
        return self

    def stop(self) -> None:
        """Stopped by its PID (SIGTERM, then SIGKILL if needed)."""
        self.mosquitto.stop()

    def allow_thing(self, thing: Thing, cert: Certificate) -> None:
        """Attach the thing policy to a certificate: append the ACL rule, reload."""
        with self._acl_lock:
            with self.acl_path.open("a") as f:
                f.write(f"user {cert.cn}\n" + THING_RULES.format(thing=thing.name))
            self.reload()

    def reload(self, timeout: float = 10) -> None:
        """SIGHUP: mosquitto reloads its configuration and ACL file; wait until it did."""
        pid = self.mosquitto.pid
        if pid is None:
            raise BrokerError("the fleet broker is not running")
        done = len(re.findall(r"Reloading config", self.log_text()))
        os.kill(pid, signal.SIGHUP)
        self.mosquitto.wait_for_log("Reloading config", timeout, count=done + 1)

    def log_text(self) -> str:
        return self.mosquitto.log_text()


def load_template(path: Path, name: str | None = None) -> Template:
    """A template body from a JSON file (the file's stem is the default name)."""
    return Template(name or Path(path).stem, json.loads(Path(path).read_text()))
