"""`make demo`: the product's main job, end to end, on the unix firmware.

Local mode (default) stands in for AWS IoT Core on this machine:
  1. a local certificate authority (root CA + broker certificate for 127.0.0.1/localhost);
  2. mosquitto on 127.0.0.1 with mutual TLS, the client certificate's name as identity;
  3. a fresh token: EC P-256 key pair generated inside it, a PKCS#10 CSR built on the
     device and signed through C_Sign;
  4. the CA signs the CSR (as `aws iot create-certificate-from-csr` would);
  5. certificate and root CA stored back in the token;
  6. MQTT over TLS through the token: subscribe, publish, receive our own message;
  7. the broker is stopped by its PID; its log shows the identity from the certificate.

Endpoint mode (--endpoint NAME-ats.iot.REGION.amazonaws.com) runs step 6 only, against
AWS IoT Core, with a token provisioned beforehand (see demo/README.md).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The lab from this checkout (it is pip-installed too, but the checkout's copy wins).
sys.path.insert(0, str(HERE.parent / "tools"))

from p11lab import LabError  # noqa: E402
from p11lab.localca import LocalCA  # noqa: E402
from p11lab.mosquitto import MOSQUITTO, Mosquitto, TLSListener  # noqa: E402
from p11lab.unix import UnixFirmware  # noqa: E402


class Steps:
    """Prints each step with the time since the start and its own duration."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.n = 0

    def __call__(self, title: str):
        steps = self

        class _Step:
            def __enter__(self) -> None:
                steps.n += 1
                self.start = time.monotonic()
                print(f"[{self.start - steps.t0:6.2f} s] {steps.n}. {title}", flush=True)

            def __exit__(self, exc_type, exc, tb) -> None:
                if exc_type is None:
                    print(f"{'':11}   done in {time.monotonic() - self.start:.2f} s", flush=True)

        return _Step()


class Device:
    """Runs demo/device.py on the unix firmware, one command per process."""

    def __init__(self, firmware: Path, token_dir: Path | None, workdir: Path) -> None:
        self.fw = UnixFirmware(token_dir, workdir, binary=firmware)

    def run(self, *args: str) -> str:
        proc = self.fw.run_file(HERE / "device.py", *args, check=False, heap=None,
                                micropypath=".frozen")
        for line in proc.stdout.splitlines():
            if line.startswith("  device "):
                print(line, flush=True)
        if proc.returncode != 0:
            sys.exit(f"device step {args[0]!r} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout


def broker(workdir: Path, ca: Path, cert: Path, key: Path) -> Mosquitto:
    """Debian's mosquitto on 127.0.0.1: TLS 1.2 and 1.3, client certificate required
    and used as the identity (as AWS IoT Core does)."""
    return Mosquitto(workdir, plain=False, allow_anonymous=False,
                     tls=TLSListener(cafile=ca, certfile=cert, keyfile=key))


def local_demo(firmware: Path, workdir: Path, thing: str) -> None:
    if not MOSQUITTO.exists():
        sys.exit(f"{MOSQUITTO} is missing: `make deps` installs Debian's mosquitto")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    step = Steps()
    print("make demo: the unix firmware talks MQTT over mutual TLS to a local stand-in for "
          "AWS IoT Core;\nits private key is born in its PKCS#11 token and never leaves it.\n")

    with step("local certificate authority (root CA, broker certificate for 127.0.0.1)"):
        ca = LocalCA(workdir / "ca", name="Demo Local Root CA")
        server = ca.issue_server(("localhost", "127.0.0.1"))
        print(f"{'':14}root: {workdir / 'ca' / 'root.pem'}")

    mqtt = broker(workdir, ca.root_path, server.cert_path, server.key_path)  # type: ignore[arg-type]
    with step("mosquitto on 127.0.0.1 (mutual TLS, identity from the client certificate)"):
        try:
            mqtt.start()
        except LabError as e:
            sys.exit(str(e))
        pid = mqtt.pid
        print(f"{'':14}pid {pid}, port {mqtt.tls_port}")
    try:
        device = Device(firmware, workdir / "token", workdir)
        (workdir / "token").mkdir()
        with step(f"provision a fresh token: key pair generated inside it, CSR for CN={thing}"):
            out = device.run("keygen", thing)
            csr = out[out.index("-----BEGIN CERTIFICATE REQUEST-----"):].encode()
            (workdir / "device.csr").write_bytes(csr)

        with step("the CA signs the CSR (as `aws iot create-certificate-from-csr` would)"):
            cert = ca.sign_csr(csr)
            (workdir / "device-cert.der").write_bytes(cert.cert_der)
            (workdir / "root.der").write_bytes(ca.root_der)
            print(f"{'':14}certificate for {cert.cert.subject.rfc4514_string()}, issued by "
                  f"{ca.cert.subject.rfc4514_string()}")

        with step("store the certificate and the root CA in the token"):
            device.run("store", "device-cert.der", "root.der")

        with step("MQTT through the token: connect, subscribe, publish, receive"):
            device.run("mqtt", "127.0.0.1", str(mqtt.tls_port), thing, "localhost")
    finally:
        with step(f"stop the broker (pid {pid})"):
            mqtt.stop()

    ident = re.search(r"New client connected from \S+ as (\S+) \(.*u'([^']*)'\)", mqtt.log_text())
    if not ident:
        sys.exit("the broker log shows no client identity:\n" + mqtt.log_text())
    print(f"\nbroker log: client {ident.group(1)!r} authenticated as {ident.group(2)!r} "
          f"(the CN of the certificate the token's key signed for)")
    print(f"demo passed in {time.monotonic() - step.t0:.2f} s (files in {workdir})")


def endpoint_demo(firmware: Path, endpoint: str, thing: str, token_dir: Path | None,
                  port: int) -> None:
    step = Steps()
    print(f"make demo ENDPOINT={endpoint}: AWS IoT Core through the token"
          f"{f' in {token_dir}' if token_dir else ''}\n")
    device = Device(firmware, token_dir, Path.cwd())
    with step(f"MQTT through the token to {endpoint}:{port} as {thing}"):
        device.run("mqtt", endpoint, str(port), thing)
    print(f"\ndemo passed in {time.monotonic() - step.t0:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firmware", type=Path, required=True, help="the unix micropython binary")
    ap.add_argument("--workdir", type=Path, default=Path("build/demo"),
                    help="local mode: CA, broker and token files (recreated each run)")
    ap.add_argument("--thing", default="", help="client id / thing name (default demo-thing)")
    ap.add_argument("--endpoint", default="", help="AWS IoT endpoint: run against AWS instead")
    ap.add_argument("--port", type=int, default=8883)
    ap.add_argument("--token-dir", type=Path, default=None,
                    help="endpoint mode: the provisioned token (default: the firmware's own)")
    args = ap.parse_args()
    if not args.firmware.exists():
        sys.exit(f"{args.firmware} is missing: run `make unix`")
    if args.endpoint:
        if not args.thing:
            sys.exit("endpoint mode needs THING=<thing name> (the MQTT client id your policy allows)")
        endpoint_demo(args.firmware.resolve(), args.endpoint, args.thing, args.token_dir, args.port)
    else:
        local_demo(args.firmware.resolve(), args.workdir.resolve(), args.thing or "demo-thing")


if __name__ == "__main__":
    main()
