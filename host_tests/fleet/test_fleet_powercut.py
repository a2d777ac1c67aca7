"""Power cuts during fleet provisioning: the unix firmware is killed with SIGKILL at
every step boundary of fleetprov and at every record write of the token store (before
and after its atomic rename). After each cut the board must hold either the claim
identity only (no device key) or the complete new identity, and the next boot must
end with exactly one device key, its certificate and the thing name, without
piling up keys; a further boot registers nothing."""

from __future__ import annotations

from typing import Any

import pytest

from harness.fleet_lab import Board, FleetLab, device_identity_or_claim, fleet  # noqa: F401

DEVICE_LABELS = [["Certificate", "Claim Cert"], ["Certificate", "Device Cert"],
                 ["Certificate", "Root Cert"], ["PrivateKey", "Claim Key"],
                 ["PrivateKey", "Device Priv TLS Key"], ["PublicKey", "Device Pub TLS Key"]]

pytestmark = pytest.mark.slow


def _complete(board: Board, thing: str) -> None:
    view = board.inspect()
    assert view["objects"] == DEVICE_LABELS, view
    assert view["identity"] is True and view["state"] is None, view
    assert view["config"]["thing_name"] == thing


def _recover(fleet: FleetLab, board: Board, thing: str, **kw: Any) -> None:
    run = board.provision(**kw)
    assert run.result is not None and run.result["thing"] == thing, run.text()
    _complete(board, thing)
    before = list(fleet.responder.requests)
    assert board.provision().result == {"state": "already", "thing": thing}
    assert fleet.responder.requests == before


def test_cut_at_every_point_of_a_first_boot(fleet: FleetLab) -> None:
    points = fleet.board(serial="REF").provision().points
    assert len(points) > 25 and points[-1] == "step:verified"
    seen = {"claim": 0, "device": 0}
    # the commit point: the rename of the key's record as "Device Priv TLS Key" (the
    # token record's object directory is written after it; a cut in between is
    # rolled forward by the next boot)
    commit = points.index("step:commit-key")
    while not (points[commit - 1].startswith("store:renamed:") and points[commit - 1].endswith(".obj")):
        commit -= 1
    assert points[commit:points.index("step:commit-key")] == [
        "store:tmp:token.rec", "store:renamed:token.rec", "store:counter:token.rec"]
    for k, point in enumerate(points, 1):
        serial = f"CUT{k:02d}"
        thing = "mpy-" + serial
        board = fleet.board(serial=serial)
        run = board.provision(cut=k)
        assert run.cut and run.points[-1] == point, (k, run.text())
        kind = device_identity_or_claim(board.inspect())
        seen[kind] += 1
        # the new identity exists exactly from the commit point on
        assert (kind == "device") == (k >= commit), (k, point, kind)
        _recover(fleet, board, thing)
        t = fleet.responder.things[thing]
        # one certificate per thing: a cut between AWS's RegisterThing answer and
        # the state file is resumed with the stored ownership token (the same
        # certificate, registered again to the same thing)
        assert len(t.certificates) == 1, (k, point)
    assert seen["claim"] > 0 and seen["device"] > 0


def test_cut_at_every_point_of_an_offline_commit(fleet: FleetLab) -> None:
    # first boot cut right after the registration was recorded; the next boot only
    # commits (no network needed) and is itself cut at each of its points
    ref = fleet.board(serial="REF2")
    points = ref.provision().points
    first = points.index("step:registered-state") + 1
    probe = fleet.board(serial="PROBE")
    assert probe.provision(cut=first).cut
    commit_points = probe.provision().points
    assert "step:keygen" not in commit_points and "step:claim-connected" not in commit_points
    for j, point in enumerate(commit_points, 1):
        serial = f"OFF{j:02d}"
        board = fleet.board(serial=serial)
        assert board.provision(cut=first).cut
        run = board.provision(cut=j)
        assert run.cut and run.points[-1] == point, (j, run.text())
        device_identity_or_claim(board.inspect())
        _recover(fleet, board, "mpy-" + serial)
        assert len(fleet.responder.things["mpy-" + serial].certificates) == 1


def test_cut_at_every_point_of_a_resumed_registration(fleet: FleetLab) -> None:
    # first boot: RegisterThing unanswered (state "cert"); the resuming boot is cut
    # at each of its points, then the next boot completes with the same certificate
    fleet.responder.silent.add("RegisterThing")
    probe = fleet.board(serial="RPROBE")
    assert probe.provision(timeout=2).error["type"] == "Timeout"
    fleet.responder.silent.clear()
    resume_points = probe.provision().points
    assert "step:keygen" not in resume_points
    for j, point in enumerate(resume_points, 1):
        serial = f"RES{j:02d}"
        board = fleet.board(serial=serial)
        fleet.responder.silent.add("RegisterThing")
        assert board.provision(timeout=2).error["type"] == "Timeout"
        fleet.responder.silent.clear()
        run = board.provision(cut=j)
        assert run.cut and run.points[-1] == point, (j, run.text())
        device_identity_or_claim(board.inspect())
        _recover(fleet, board, "mpy-" + serial)
        # still the first certificate: the ownership token was used again
        assert len(fleet.responder.things["mpy-" + serial].certificates) == 1
