"""The local AWS IoT fleet provisioning stand-in (tools/p11lab/fleet_responder.py)
from the host, as the claim identity with paho-mqtt: payload checks, the ownership
token bound to its certificate and to its lifetime, the template language."""

from __future__ import annotations

import json
import queue
import ssl
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
import paho.mqtt.client as paho

from harness.fleet_lab import TEMPLATE, FleetLab, fleet  # noqa: F401
from p11lab.localca import new_key
from p11lab.fleet_responder import Refusal, Template

CSR = "$aws/certificates/create-from-csr/json"
PROV = f"$aws/provisioning-templates/{TEMPLATE}/provision/json"


class Claim:
    """The claim identity on the host: request() publishes and waits for the answer."""

    def __init__(self, fleet: FleetLab) -> None:
        self.answers: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.subscribed: queue.Queue[bool] = queue.Queue()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="host-claim")
        c.tls_set(ca_certs=str(fleet.ca.root_path), certfile=str(fleet.claim.cert_path),
                  keyfile=str(fleet.claim.key_path), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.on_message = lambda cl, u, m: self.answers.put((m.topic, json.loads(m.payload)))
        c.on_subscribe = lambda *a: self.subscribed.put(True)
        c.connect("127.0.0.1", fleet.broker.port)
        c.loop_start()
        c.subscribe([(CSR + "/accepted", 1), (CSR + "/rejected", 1),
                     (PROV + "/accepted", 1), (PROV + "/rejected", 1)])
        self.subscribed.get(timeout=10)
        self.client = c

    def request(self, topic: str, payload: Any) -> tuple[str, dict[str, Any]]:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1).wait_for_publish(10)
        t, answer = self.answers.get(timeout=10)
        return t.rsplit("/", 1)[1], answer

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def claim(fleet: FleetLab) -> Any:
    c = Claim(fleet)
    yield c
    c.close()


def csr_pem(cn: str = "HOST1") -> str:
    req = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(new_key(), hashes.SHA256())
    return req.public_bytes(serialization.Encoding.PEM).decode()


def test_create_from_csr_answers_as_aws_documents(fleet: FleetLab, claim: Claim) -> None:
    kind, a = claim.request(CSR, {"certificateSigningRequest": csr_pem()})
    assert kind == "accepted" and set(a) == {"certificateId", "certificatePem", "certificateOwnershipToken"}
    cert = x509.load_pem_x509_certificate(a["certificatePem"].encode())
    assert cert.issuer == fleet.ca.cert.subject
    assert a["certificateId"] == cert.fingerprint(hashes.SHA256()).hex()
    assert fleet.responder.certificates[a["certificateId"]].status == "PENDING_ACTIVATION"


@pytest.mark.parametrize("payload, code", [
    (b"not json", "InvalidPayload"),
    (b"[1, 2]", "InvalidPayload"),
    ({}, "InvalidPayload"),
    ({"certificateSigningRequest": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"}, "InvalidCsr"),
])
def test_create_from_csr_refusals(claim: Claim, payload: Any, code: str) -> None:
    kind, a = claim.request(CSR, payload)
    assert kind == "rejected" and a["statusCode"] == 400 and a["errorCode"] == code


def test_ownership_token_is_bound_to_its_certificate_and_lifetime(fleet: FleetLab, claim: Claim) -> None:
    _, first = claim.request(CSR, {"certificateSigningRequest": csr_pem("HOST1")})
    _, second = claim.request(CSR, {"certificateSigningRequest": csr_pem("HOST2")})
    # an empty, unknown or altered token is refused
    for token in ("", "bm90IGEgdG9rZW4=", first["certificateOwnershipToken"][:-4] + "AAAA"):
        kind, a = claim.request(PROV, {"certificateOwnershipToken": token,
                                       "parameters": {"SerialNumber": "H1"}})
        assert (kind, a["statusCode"], a["errorCode"]) == ("rejected", 400, "InvalidCertificateOwnershipToken")
    # a token registers its own certificate, not another one
    kind, a = claim.request(PROV, {"certificateOwnershipToken": second["certificateOwnershipToken"],
                                   "parameters": {"SerialNumber": "H2"}})
    assert kind == "accepted" and a["thingName"] == "mpy-H2"
    assert fleet.responder.things["mpy-H2"].certificates == [second["certificateId"]]
    assert fleet.responder.certificates[first["certificateId"]].status == "PENDING_ACTIVATION"
    # the same token cannot move its certificate to another thing
    kind, a = claim.request(PROV, {"certificateOwnershipToken": second["certificateOwnershipToken"],
                                   "parameters": {"SerialNumber": "H3"}})
    assert kind == "rejected" and a["errorCode"] == "InvalidCertificateOwnershipToken"
    # and tokens expire
    fleet.responder.expire_tokens()
    kind, a = claim.request(PROV, {"certificateOwnershipToken": first["certificateOwnershipToken"],
                                   "parameters": {"SerialNumber": "H1"}})
    assert kind == "rejected" and "expired" in a["errorMessage"]


def test_template_language() -> None:
    t = Template("t", {
        "Parameters": {"Serial": {"Type": "String"}, "N": {"Type": "Number", "Default": 3}},
        "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
            "ThingName": {"Fn::Sub": "dev-${Serial}"},
            "AttributePayload": {"n": {"Ref": "N"}, "j": {"Fn::Join": ["-", ["a", {"Ref": "Serial"}]]}}}}},
        "DeviceConfiguration": {"url": {"Fn::Join": ["", ["https://x/", {"Ref": "Serial"}]]}}})
    p = t.parameters({"Serial": "S1"})
    assert p == {"Serial": "S1", "N": "3"}
    assert t.provision(p) == ("dev-S1", {"url": "https://x/S1"}, {"n": "3", "j": "a-S1"})
    with pytest.raises(Refusal, match="must be a number"):
        t.parameters({"Serial": "S1", "N": "three"})
    with pytest.raises(Refusal, match="no valid thing name"):
        t.provision({"Serial": "bad name!", "N": "1"})
