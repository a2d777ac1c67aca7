"""Fleet provisioning by claim (modules/fleetprov/fleetprov.py) on the unix firmware, against the
local stand-in for AWS IoT: mosquitto with the fleet ACLs and the responder of
tools/p11lab/fleet_responder.py. Acceptance, every rejection path, timeouts,
a second run after success, the ACLs."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
from typing import Any

import paho.mqtt.client as paho

from harness.fleet_lab import CLAIM_CN, FleetLab, claim_settings, fleet  # noqa: F401

DEVICE_LABELS = [["Certificate", "Claim Cert"], ["Certificate", "Device Cert"],
                 ["Certificate", "Root Cert"], ["PrivateKey", "Claim Key"],
                 ["PrivateKey", "Device Priv TLS Key"], ["PublicKey", "Device Pub TLS Key"]]
CLAIM_LABELS = [["Certificate", "Claim Cert"], ["Certificate", "Root Cert"],
                ["PrivateKey", "Claim Key"]]


def test_acceptance_claim_to_own_identity(fleet: FleetLab) -> None:
    board = fleet.board(serial="SN0001")
    run = board.provision()
    r = run.result
    assert r is not None, run.text()
    assert r["state"] == "provisioned"
    assert r["thing"] == "mpy-SN0001"
    assert r["topic"] == "things/mpy-SN0001/provisioned"
    assert r["device_configuration"] == {"Model": "micropython-pkcs11",
                                         "TelemetryTopic": "things/mpy-SN0001/telemetry"}
    # the steps, in the issue's order
    steps = [p[5:] for p in run.points if p.startswith("step:")]
    assert steps == ["start", "cleanup", "keygen", "csr", "claim-connected", "cert-accepted",
                     "cert-stored", "cert-state", "registered", "registered-state", "claim-closed",
                     "commit-cleared", "commit-config", "commit-cert", "commit-pub", "commit-key",
                     "committed", "device-connected", "published", "verified"]
    # AWS's side: one certificate, registered to one thing, active
    cert = fleet.responder.certificates[r["certificate_id"]]
    assert cert.status == "ACTIVE" and cert.thing == "mpy-SN0001" and cert.cn == "SN0001"
    assert fleet.responder.things["mpy-SN0001"].certificates == [r["certificate_id"]]
    assert fleet.responder.things["mpy-SN0001"].attributes == {"model": "micropython-pkcs11",
                                                               "serial": "SN0001"}
    # the board: the new identity complete, the claim kept, config written
    view = board.inspect()
    assert view["objects"] == DEVICE_LABELS
    assert view["identity"] is True and view["state"] is None
    cfg = view["config"]
    assert (cfg["thing_name"], cfg["endpoint"], cfg["port"]) == ("mpy-SN0001", "127.0.0.1",
                                                                 fleet.broker.port)
    assert cfg["device_configuration"]["TelemetryTopic"] == "things/mpy-SN0001/telemetry"
    # the broker saw the claim identity, then the new one with the thing name as client id
    log = fleet.broker.log_text()
    assert re.search(rf"New client connected from \S+ as SN0001 \(.*u'{CLAIM_CN}'\)", log), log
    assert re.search(r"New client connected from \S+ as mpy-SN0001 \(.*u'SN0001'\)", log), log
    assert "Received PUBLISH from mpy-SN0001" in log and "things/mpy-SN0001/provisioned" in log
    assert "Denied" not in log


def test_certificate_matches_key_born_in_token(fleet: FleetLab) -> None:
    from cryptography import x509

    board = fleet.board(serial="SN0002")
    r = board.provision().result
    pem = fleet.responder.certificates[r["certificate_id"]].pem.encode()
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.issuer == fleet.ca.cert.subject
    # the token's "Device Cert" is that certificate
    out = board.exec("fleet_cert.py", "import pkcs11, binascii\n"
                     "with pkcs11.open_session(rw=False) as s:\n"
                     "    c = s.get_object(object_class=1, label='Device Cert')\n"
                     "    print('DER ' + binascii.hexlify(c.der).decode())\n", None)
    der = bytes.fromhex(out.split("DER ")[1].split()[0])
    assert der == cert.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                               fromlist=["Encoding"]).Encoding.DER)


def test_second_run_after_success_registers_nothing(fleet: FleetLab) -> None:
    board = fleet.board(serial="SN0003")
    assert board.provision().result["state"] == "provisioned"
    before = list(fleet.responder.requests)
    view = board.inspect()
    run = board.provision()
    assert run.result == {"state": "already", "thing": "mpy-SN0003"}
    assert [p for p in run.points if p.startswith("store:")] == []   # nothing written
    assert fleet.responder.requests == before
    assert board.inspect() == view
    assert len(fleet.responder.things) == 1


def test_destroy_claim_after_first_message(fleet: FleetLab) -> None:
    board = fleet.board(serial="SN0004")
    run = board.provision(destroy_claim=True)
    assert run.result["state"] == "provisioned"
    assert run.points[-1] == "step:claim-destroyed"
    assert board.labels() == [["Certificate", "Device Cert"], ["Certificate", "Root Cert"],
                              ["PrivateKey", "Device Priv TLS Key"], ["PublicKey", "Device Pub TLS Key"]]
    assert board.provision().result["state"] == "already"


def test_no_claim_identity_is_not_configured(fleet: FleetLab) -> None:
    board = fleet.board(load=False)
    run = board.provision(template="mpy-fleet", endpoint="127.0.0.1", port=fleet.broker.port)
    assert run.error["type"] == "NotConfigured"
    assert "Claim Key" in run.error["message"] and "load-claim" in run.error["message"]
    assert fleet.responder.requests == []


def _claim_only(fleet: FleetLab, board: Any) -> None:
    view = board.inspect()
    assert view["objects"] == CLAIM_LABELS, view
    assert view["state"] is None and view["config"] is None


# -- rejections ------------------------------------------------------------------------


def test_template_refuses_missing_parameter(fleet: FleetLab) -> None:
    board = fleet.board(serial=None)            # no SerialNumber: the template requires it
    run = board.provision()
    rej = run.rejected
    assert rej == {"api": "RegisterThing", "statusCode": 400, "errorCode": "InvalidParameters",
                   "errorMessage": "required parameter 'SerialNumber' is missing", "final": True}
    _claim_only(fleet, board)                   # the new key and certificate are gone
    assert fleet.responder.things == {}


def test_template_refuses_parameter_type(fleet: FleetLab) -> None:
    board = fleet.board(serial="SN0005")
    run = board.provision(parameters={"SerialNumber": "SN0005", "Model": 7})
    assert run.rejected["errorCode"] == "InvalidParameters"
    assert "'Model' must be a string" in run.rejected["errorMessage"]
    _claim_only(fleet, board)


def test_pre_provisioning_hook_refuses(fleet: FleetLab) -> None:
    seen: list[dict[str, str]] = []

    def hook(template: str, params: dict[str, str]) -> dict[str, Any]:
        seen.append(params)
        return {"allowProvisioning": not params["SerialNumber"].startswith("STOLEN")}

    fleet.responder.hook = hook
    board = fleet.board(serial="STOLEN-1")
    rej = board.provision().rejected
    assert (rej["api"], rej["statusCode"], rej["errorCode"]) == ("RegisterThing", 403, "AccessDenied")
    assert rej["final"] is True
    assert seen[0]["SerialNumber"] == "STOLEN-1" and seen[0]["Model"] == "micropython-pkcs11"
    _claim_only(fleet, board)
    # the hook lets a good serial through, and may override parameters
    fleet.responder.hook = lambda t, p: {"allowProvisioning": True,
                                         "parameterOverrides": {"Model": "hooked"}}
    good = fleet.board(serial="SN0006")
    r = good.provision().result
    assert r["thing"] == "mpy-SN0006" and r["device_configuration"]["Model"] == "hooked"


def test_disabled_template_is_not_found(fleet: FleetLab) -> None:
    fleet.responder.templates["mpy-fleet"].enabled = False
    board = fleet.board(serial="SN0007")
    rej = board.provision().rejected
    assert (rej["api"], rej["statusCode"], rej["errorCode"]) == ("RegisterThing", 404, "NotFound")
    _claim_only(fleet, board)


def test_create_certificate_rejected_is_retryable(fleet: FleetLab) -> None:
    fleet.responder.refuse["CreateCertificateFromCsr"] = (503, "ServiceUnavailable", "try later")
    board = fleet.board(serial="SN0008")
    rej = board.provision().rejected
    assert rej == {"api": "CreateCertificateFromCsr", "statusCode": 503,
                   "errorCode": "ServiceUnavailable", "errorMessage": "try later", "final": False}
    _claim_only(fleet, board)
    del fleet.responder.refuse["CreateCertificateFromCsr"]
    assert board.provision().result["state"] == "provisioned"
    assert board.inspect()["objects"] == DEVICE_LABELS


def test_throttled_register_is_retried_by_the_policy(fleet: FleetLab) -> None:
    # provision_until_done(): a 429 is retried after retry_delay(), a 4xx is final
    fleet.responder.refuse["RegisterThing"] = (429, "ThrottlingException", "slow down")
    board = fleet.board(serial="SN0009")
    script = ("import sys, json, fleetprov\n"
              "try:\n"
              "    fleetprov.provision_until_done(attempts=3, base=1, cap=2,\n"
              "                                   sleep=lambda s: print('SLEEP %.3f' % s))\n"
              "except fleetprov.Rejected as e:\n"
              "    print('GAVE UP', e.status_code)\n")
    out = board.exec("fleet_policy.py", script, None)
    sleeps = [float(x) for x in re.findall(r"SLEEP (\S+)", out)]
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2, out
    assert "GAVE UP 429" in out
    assert fleet.responder.count("RegisterThing", "ThrottlingException") == 3
    # a final rejection is not retried
    fleet.responder.refuse["RegisterThing"] = (400, "InvalidParameters", "no")
    out = board.exec("fleet_policy.py", script, None)
    assert "SLEEP" not in out and "GAVE UP 400" in out


# -- timeouts ----------------------------------------------------------------------------


def test_timeout_without_certificate_answer(fleet: FleetLab) -> None:
    fleet.responder.silent.add("CreateCertificateFromCsr")
    board = fleet.board(serial="SN0010")
    run = board.provision(timeout=2)
    assert run.error["type"] == "Timeout"
    assert "CreateCertificateFromCsr" in run.error["message"]
    assert "$aws/certificates/create-from-csr/json/accepted" in run.error["message"]
    # the next boot starts from step 1 and leaves no extra key
    fleet.responder.silent.clear()
    assert board.provision().result["state"] == "provisioned"
    assert board.inspect()["objects"] == DEVICE_LABELS


def test_timeout_without_register_answer_resumes_with_the_same_certificate(fleet: FleetLab) -> None:
    fleet.responder.silent.add("RegisterThing")
    board = fleet.board(serial="SN0011")
    run = board.provision(timeout=2)
    assert run.error["type"] == "Timeout" and "RegisterThing" in run.error["message"]
    view = board.inspect()
    assert view["state"]["stage"] == "cert"
    assert ["PrivateKey", "Fleet New Key"] in view["objects"]
    assert ["PrivateKey", "Device Priv TLS Key"] not in view["objects"]
    fleet.responder.silent.clear()
    run = board.provision()
    assert run.result["state"] == "provisioned"
    assert "step:keygen" not in run.points          # resumed: no new key, no new certificate
    assert fleet.responder.count("CreateCertificateFromCsr") == 1
    assert board.inspect()["objects"] == DEVICE_LABELS


def test_expired_ownership_token_starts_again(fleet: FleetLab) -> None:
    fleet.responder.silent.add("RegisterThing")
    board = fleet.board(serial="SN0012")
    assert board.provision(timeout=2).error["type"] == "Timeout"
    fleet.responder.silent.clear()
    fleet.responder.expire_tokens()                 # an hour later
    run = board.provision()
    assert run.result["state"] == "provisioned", run.text()
    assert fleet.responder.count("RegisterThing", "InvalidCertificateOwnershipToken") == 1
    assert fleet.responder.count("CreateCertificateFromCsr") == 2
    assert board.inspect()["objects"] == DEVICE_LABELS
    # the first certificate was never activated
    states = sorted(c.status for c in fleet.responder.certificates.values())
    assert states == ["ACTIVE", "PENDING_ACTIVATION"]


# -- the ACLs (the stand-in's IoT policies) ------------------------------------------------

ACL_PROBE = r'''
import json, sys, p11tls
from mqtt import MQTTClient
with open(sys.argv[1]) as f:
    a = json.load(f)
c = MQTTClient(a["client_id"], p11tls.opener("127.0.0.1", a["port"], server_hostname="localhost",
               key_label=a["key"], cert_label=a["cert"]), keepalive=60)
c.connect()
c.subscribe([(t, 1) for t in a["subscribe"]])
for t in a["publish"]:
    c.publish(t, b"probe from the device", qos=1)
print("READY")
got = []
while True:
    m = c.wait_msg(20)
    if m is None:
        print("TIMEOUT")
        break
    got.append([bytes(m[0]).decode(), bytes(m[1]).decode()])
    if got[-1][0] == a["marker"]:
        break
c.disconnect()
print("GOT " + json.dumps(got))
'''


def _host_client(fleet: FleetLab, cn: str) -> paho.Client:
    ident = fleet.ca.issue_client(cn)
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"host-{cn}")
    c.tls_set(ca_certs=str(fleet.ca.root_path), certfile=str(ident.cert_path),
              keyfile=str(ident.key_path), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    c.connect("127.0.0.1", fleet.broker.port)
    c.loop_start()
    return c


def _probe(fleet: FleetLab, board: Any, arg: dict[str, Any], then: Any) -> list[list[str]]:
    def on_line(line: str, proc: subprocess.Popen[bytes]) -> bool:
        if line == "READY":
            then()
        return False
    run = board.interact("fleet_acl_probe.py", ACL_PROBE, dict(arg, port=fleet.broker.port), on_line)
    got = run.tagged("GOT")
    assert got is not None, run.text()
    return got


def test_claim_identity_may_use_fleet_topics_only(fleet: FleetLab) -> None:
    board = fleet.board(serial="SN0013")
    assert board.provision().result["thing"] == "mpy-SN0013"
    thing = _host_client(fleet, "SN0013")            # the thing's rights, on the host
    marker = "$aws/certificates/create-from-csr/json/accepted"

    def then() -> None:
        thing.publish("things/mpy-SN0013/cmd", b"for the thing only", qos=1).wait_for_publish(10)
        fleet.responder.client.publish(marker, b"{}", qos=1).wait_for_publish(10)

    got = _probe(fleet, board, {"client_id": "claim-probe", "key": "Claim Key", "cert": "Claim Cert",
                                "subscribe": ["things/mpy-SN0013/#", marker],
                                "publish": ["things/mpy-SN0013/telemetry"], "marker": marker}, then)
    thing.disconnect()
    assert got == [[marker, "{}"]]               # neither its own publish nor the thing's message
    assert re.search(r"Denied PUBLISH from claim-probe .*things/mpy-SN0013/telemetry",
                     fleet.broker.log_text())


def test_new_identity_may_use_its_own_topics_only(fleet: FleetLab) -> None:
    board = fleet.board(serial="SN0014")
    assert board.provision().result["thing"] == "mpy-SN0014"
    other = fleet.board(serial="SN0015")
    assert other.provision().result["thing"] == "mpy-SN0015"
    before = list(fleet.responder.requests)
    other_host = _host_client(fleet, "SN0015")
    own_host = _host_client(fleet, "SN0014")
    fleet_topic = "$aws/certificates/create-from-csr/json/accepted"
    marker = "things/mpy-SN0014/done"

    def then() -> None:
        fleet.responder.client.publish(fleet_topic, b"{}", qos=1).wait_for_publish(10)
        other_host.publish("things/mpy-SN0015/x", b"not yours", qos=1).wait_for_publish(10)
        own_host.publish(marker, b"marker", qos=1).wait_for_publish(10)

    got = _probe(fleet, board, {
        "client_id": "mpy-SN0014", "key": "Device Priv TLS Key", "cert": "Device Cert",
        "subscribe": ["things/mpy-SN0014/#", "things/mpy-SN0015/#", fleet_topic],
        "publish": ["$aws/certificates/create-from-csr/json", "things/mpy-SN0015/x"],
        "marker": marker}, then)
    other_host.disconnect()
    own_host.disconnect()
    assert got == [[marker, "marker"]]
    assert fleet.responder.requests == before         # the CSR request never reached it
    log = fleet.broker.log_text()
    assert re.search(r"Denied PUBLISH from mpy-SN0014 .*\$aws/certificates/create-from-csr/json'", log)
    assert re.search(r"Denied PUBLISH from mpy-SN0014 .*things/mpy-SN0015/x", log)


def test_heap_small_enough_for_a_board(fleet: FleetLab) -> None:
    # the whole flow, two TLS connections' mbedTLS buffers included (they come from
    # the MicroPython heap), in a 96 KB heap; measured: 80 KB works, 72 KB does not
    board = fleet.board(serial="SN0016", heap="96K")
    run = board.provision()
    assert run.result is not None and run.result["state"] == "provisioned", run.text()
    assert json.dumps(run.result)
