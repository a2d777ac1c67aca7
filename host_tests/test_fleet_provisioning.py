"""Fleet provisioning by claim on the unix firmware against the local stand-in for
AWS IoT (mosquitto with the fleet ACLs + tools/p11lab/fleet_responder.py)."""

from __future__ import annotations

from fleet_lab import FleetLab, fleet  # noqa: F401


def test_acceptance_claim_to_own_identity(fleet: FleetLab) -> None:
    board = fleet.board(serial="SN0001")
    run = board.provision()
    r = run.result
    assert r is not None, run.text()
    assert r["state"] == "provisioned"
    assert r["thing"] == "mpy-SN0001"
    assert r["device_configuration"] == {"Model": "micropython-pkcs11",
                                         "TelemetryTopic": "things/mpy-SN0001/telemetry"}
    assert r["certificate_id"] in fleet.responder.certificates
    view = board.inspect()
    print(view)
