"""`make demo-fleet`: fleet provisioning by claim, end to end, on the unix firmware.

A local stand-in for AWS IoT Core on this machine:
  1. a local CA: root, broker certificate, the batch's claim key and certificate, the
     provisioning service's own identity; the batch file (claim-batch.json);
  2. mosquitto on 127.0.0.1 (mutual TLS, certificate CN = identity) with the fleet ACLs:
     the claim may use only the fleet provisioning topics, a thing only its own;
  3. the fleet provisioning responder (tools/p11lab/fleet_responder.py, paho-mqtt) with
     the template docs/fleet/template.json;
  4. bench step, once per batch: `p11board --unix load-claim claim-batch.json` onto a
     fresh token;
  5. first boot: fleetprov.provision(): key pair born in the token, CSR signed by C_Sign,
     CreateCertificateFromCsr and RegisterThing over the claim connection, commit, reconnect
     with the new identity, first message published and received;
  6. second boot: nothing sent; telemetry with the board's own identity;
  7. the broker is stopped by its PID; its log shows both identities.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from p11lab import LabError
from p11lab.fleet_responder import FleetBroker, FleetResponder, load_template
from p11lab.localca import LocalCA
from p11lab.unix import UnixFirmware
from run import Steps  # demo/run.py, next to this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

TEMPLATE = "mpy-fleet"
CLAIM_CN = "claim-batch-1"


def device(firmware: Path, token: Path, workdir: Path, *args: str) -> str:
    """demo/fleet_device.py on the unix firmware (frozen modules only)."""
    proc = UnixFirmware(token, workdir, binary=firmware).run_file(
        HERE / "fleet_device.py", *args, check=False, heap=None, micropypath=".frozen")
    for line in proc.stdout.splitlines():
        if line.startswith("  device "):
            print(line, flush=True)
    if proc.returncode != 0:
        sys.exit(f"device step {args[0]!r} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firmware", type=Path, required=True, help="the unix micropython binary")
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "demo-fleet",
                    help="CA, broker, batch file and token (recreated each run)")
    ap.add_argument("--serial", default="SN0001", help="the board's serial number (template parameter)")
    args = ap.parse_args()
    firmware, work = args.firmware.resolve(), args.workdir.resolve()
    if not firmware.exists():
        sys.exit(f"{firmware} is missing: run `make unix`")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    step = Steps()
    print("make demo-fleet: a fresh board provisions itself by claim against a local stand-in "
          "for AWS IoT;\nits new key is born in its PKCS#11 token and never leaves it.\n")

    with step("local CA: root, broker certificate, claim key and certificate of the batch"):
        ca = LocalCA(work / "ca", name="Fleet Demo Root CA")
        server = ca.issue_server(("localhost", "127.0.0.1"))
        claim = ca.issue_client(CLAIM_CN)
        service = ca.issue_client("fleet-responder")

    broker = FleetBroker(work / "broker", ca.root_path, server.cert_path, server.key_path,  # type: ignore[arg-type]
                         {CLAIM_CN: TEMPLATE})
    with step("mosquitto on 127.0.0.1 with the fleet ACLs (claim: fleet topics; thing: its own)"):
        broker.start()
        print(f"{'':14}pid {broker.pid}, port {broker.port}, ACL {broker.acl_path}")
    responder = None
    try:
        with step(f"fleet provisioning responder (paho-mqtt), template {TEMPLATE!r}"):
            responder = FleetResponder(
                "127.0.0.1", broker.port, ca, [load_template(ROOT / "docs/fleet/template.json", TEMPLATE)],
                (ca.root_path, service.cert_path, service.key_path),  # type: ignore[arg-type]
                on_register=broker.allow_thing,
                log=lambda text: print(f"{'':14}responder: {text}", flush=True)).start()

        batch = work / "claim-batch.json"
        batch.write_text(json.dumps({
            "template": TEMPLATE, "endpoint": "127.0.0.1", "server_name": "localhost",
            "port": broker.port, "claim_certificate": claim.cert_pem.decode(),
            "claim_private_key": claim.key_pem.decode(), "root_ca": ca.root_pem.decode()}, indent=1))
        token = work / "token"
        token.mkdir()
        with step("bench step: p11board --unix load-claim claim-batch.json (once per batch)"):
            proc = subprocess.run([sys.executable, "-m", "p11board.cli", "--unix", "--firmware", str(firmware),
                                   "--token-dir", str(token), "load-claim", str(batch),
                                   "--param", f"SerialNumber={args.serial}"],
                                  cwd=work, capture_output=True, text=True, timeout=300,
                                  stdin=subprocess.DEVNULL)
            for line in proc.stderr.splitlines():
                print(f"{'':14}{line}")
            if proc.returncode != 0:
                sys.exit(f"p11board load-claim failed ({proc.returncode})")

        with step("first boot: fleetprov.provision() by claim"):
            device(firmware, token, work, "boot")

        with step("second boot: fleetprov.provision() sends nothing; telemetry as the thing"):
            before = list(responder.requests)
            device(firmware, token, work, "boot")
            device(firmware, token, work, "telemetry")
            if responder.requests != before:
                sys.exit("the second boot talked to the provisioning service")
    finally:
        with step(f"stop the responder and the broker (pid {broker.pid or '-'})"):
            if responder is not None:
                responder.stop()
            broker.stop()

    log = broker.log_text()
    print("\nbroker log, identities:")
    for m in re.finditer(r"New client connected from \S+ as (\S+) \(.*u'([^']*)'\)", log):
        if m.group(1) != "fleet-responder":
            print(f"  client id {m.group(1)!r} authenticated as {m.group(2)!r}")
    thing = next(iter(responder.things.values())) if responder and responder.things else None
    if thing is None:
        sys.exit("no thing was registered")
    print(f"registry: thing {thing.name!r}, attributes {thing.attributes}, "
          f"certificate {thing.certificates[0][:16]}... ACTIVE")
    print(f"demo passed in {time.monotonic() - step.t0:.2f} s (files in {work})")


if __name__ == "__main__":
    try:
        main()
    except LabError as e:  # a launcher failed: its message says what and what to run
        sys.exit(f"make demo-fleet: {e}")
