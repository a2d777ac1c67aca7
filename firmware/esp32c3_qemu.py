"""Boot the ESP32-C3 token firmware in the ESP32-C3 emulator and run the token's seed
sequence (provisioning, then after a power cycle the TLS client-authentication calls
with a signature checked on the host) and the PIN lock/unlock flow on it.

    build/venv/bin/python firmware/esp32c3_qemu.py [--cache ~/.cache/esp32c3]

Needs what ../shared/tools/esp32c3/build.sh leaves in its cache (`build.sh . --qemu`):
the image (project/build/esp32c3) and qemu-system-riscv32 (qemu/build); and this
checkout's unix firmware (`make unix`), which writes the littlefs image of the "vfs"
partition holding the main.py that runs each step.

Two things of the emulator (esp32-open-mac/qemu at build.sh's commit) decide how:
- It is given an eFuse image as a real ESP32-C3 (chip v0.3 or later) leaves the factory
  in the parts ESP-IDF reads at start-up: chip revision 0.3 and the ADC calibration block
  version 1. With its default all-zero eFuse, ESP-IDF's ADC start-up calibration (linked
  by machine.ADC) finds no factory calibration, self-calibrates with the ADC the emulator
  does not model, and waits forever in read_cal_channel before MicroPython starts.
- Its C3 UART model keeps the ESP32's register layout, so the C3's RX-timeout setting
  never takes effect: typed bytes reach MicroPython only in blocks of 120 (the RX FIFO
  threshold), and the REPL cannot be driven over the serial line (mpremote waits
  forever). Each step therefore runs as main.py from the vfs partition and prints one
  "P11EMU <json>" line on the UART, which this script reads.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# eFuse file layout of the emulator (hw/nvram/esp32c3_efuse.c): the read registers from
# EFUSE_RD_WR_DIS on, BLOCK0 (6 words), BLOCK1 (6 words), BLOCK2 (8 words), ...
EFUSE_SIZE = 1024
EFUSE_BLK1_MAC_SPI_SYS_3 = 4 * (6 + 3)      # bits 18..20: WAFER_VERSION_MINOR_LO
EFUSE_BLK2_SYS_DATA4 = 4 * (6 + 6 + 4)      # bits 0..1: BLK_VERSION_MAJOR (1 = with calibration)


def efuse_image(path: Path) -> None:
    data = bytearray(EFUSE_SIZE)
    struct.pack_into("<I", data, EFUSE_BLK1_MAC_SPI_SYS_3, 3 << 18)
    struct.pack_into("<I", data, EFUSE_BLK2_SYS_DATA4, 1)
    path.write_bytes(bytes(data))


SEED = """
import pkcs11, json, hashlib
from pkcs11.constants import *
from pkcs11 import crypto
p11 = pkcs11.C_GetFunctionList()
P256 = b"\\x06\\x08\\x2a\\x86\\x48\\xce\\x3d\\x03\\x01\\x07"
# provisioning (the seed's order)
p11.C_Initialize()
slot = p11.C_GetSlotList(True)[0]
h = p11.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
k = crypto.parse_private_key(KEY)
key = p11.C_CreateObject(h, [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
    (CKA_LABEL, b"Device Priv TLS Key"), (CKA_SIGN, True), (CKA_EC_PARAMS, P256), (CKA_VALUE, k["d"])])
k = None
cert = p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
    (CKA_TOKEN, True), (CKA_LABEL, b"Device Cert"), (CKA_VALUE, CERT)])
p11.C_CloseSession(h)
p11.C_Finalize()
out = {"key": key, "cert": cert}
"""

SIGN = """
import pkcs11, json
from pkcs11.constants import *
p11 = pkcs11.C_GetFunctionList()
# TLS client authentication (the seed's order)
p11.C_Initialize()
slot = p11.C_GetSlotList(True)[0]
h = p11.C_OpenSession(slot, CKF_SERIAL_SESSION)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"Device Priv TLS Key")])
found = p11.C_FindObjects(h, 1)
p11.C_FindObjectsFinal(h)
p11.C_SignInit(h, CKM_ECDSA, found[0])
sig = p11.C_Sign(h, DIGEST)
p11.C_CloseSession(h)
p11.C_Finalize()
out = {"sig": sig.hex()}
"""

LOCK = """
import pkcs11, json, gc
from pkcs11.constants import *
from pkcs11 import errors
p11 = pkcs11.C_GetFunctionList()
def ckr(f, *a):
    try:
        f(*a)
        return "OK"
    except errors.PKCS11Error as e:
        return errors.name(e.rv)
def keys(h):
    p11.C_FindObjectsInit(h, [(CKA_CLASS, CKO_PRIVATE_KEY)])
    r = p11.C_FindObjects(h, 8)
    p11.C_FindObjectsFinal(h)
    return len(r)
p11.C_Initialize()
out["init_token"] = ckr(p11.C_InitToken, 0, b"so-secret", b"emulated")
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
out["so_login"] = ckr(p11.C_Login, h, CKU_SO, b"so-secret")
out["init_pin"] = ckr(p11.C_InitPIN, h, b"1234")
p11.C_Logout(h)
out["user_login"] = ckr(p11.C_Login, h, CKU_USER, b"1234")
pub, priv = p11.C_GenerateKeyPair(h, CKM_EC_KEY_PAIR_GEN,
    [(CKA_TOKEN, True), (CKA_EC_PARAMS, b"\\x06\\x08\\x2a\\x86\\x48\\xce\\x3d\\x03\\x01\\x07"),
     (CKA_LABEL, b"locked key")],
    [(CKA_TOKEN, True), (CKA_PRIVATE, True), (CKA_SIGN, True), (CKA_LABEL, b"locked key")])
out["keys_unlocked"] = keys(h)
out["logout"] = ckr(p11.C_Logout, h)
out["keys_locked"] = keys(h)
out["wrong_pin"] = ckr(p11.C_Login, h, CKU_USER, b"9999")
out["keys_after_wrong_pin"] = keys(h)
out["login_again"] = ckr(p11.C_Login, h, CKU_USER, b"1234")
out["keys_unlocked_again"] = keys(h)
p11.C_SignInit(h, CKM_ECDSA, priv)
out["sig_len"] = len(p11.C_Sign(h, b"\\x01" * 32))
p11.C_CloseSession(h)
p11.C_Finalize()
gc.collect()
out["mem_free"] = gc.mem_free()
"""

HEAP = """
import gc, json
gc.collect(); before = gc.mem_alloc()
import pkcs11, p11tls, _pkcs11, _p11tls
gc.collect(); after_import = gc.mem_alloc()
p11 = pkcs11.C_GetFunctionList(); p11.C_Initialize()
gc.collect(); after_init = gc.mem_alloc()
p11.C_Finalize()
out = {"heap_total": gc.mem_alloc() + gc.mem_free(), "import": after_import - before,
       "initialize": after_init - after_import}
"""


STEP = """
import json, sys
out = {}
try:
%s
except Exception as e:
    sys.print_exception(e)
    out = {"error": repr(e)}
print("P11EMU " + json.dumps(out))
"""


def step(code: str, **values) -> str:
    """main.py for one step: values as Python literals, then code, its result in out."""
    body = "".join(f"{k} = {v!r}\n" for k, v in values.items()) + code
    return STEP % "\n".join("    " + line for line in body.splitlines())


# Writes a littlefs2 image of the vfs partition holding main.py (run on the unix firmware,
# with the same littlefs as the board's firmware and the port's default parameters).
MKFS = """
import vfs, sys
class RAM:
    def __init__(self, n): self.data = bytearray(n * 4096)
    def readblocks(self, b, buf, off=0):
        o = b * 4096 + off; buf[:] = self.data[o:o + len(buf)]
    def writeblocks(self, b, buf, off=None):
        if off is None:
            off = 0
            self.data[b * 4096:(b + 1) * 4096] = b"\\xff" * 4096
        o = b * 4096 + off; self.data[o:o + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4: return len(self.data) // 4096
        if op == 5: return 4096
        if op == 6:
            self.data[arg * 4096:(arg + 1) * 4096] = b"\\xff" * 4096
            return 0
bd = RAM(SIZE // 4096)
vfs.VfsLfs2.mkfs(bd)
fs = vfs.VfsLfs2(bd)
with fs.open("main.py", "w") as f:
    f.write(open(SRC).read())
fs.umount() if hasattr(fs, "umount") else None
open(OUT, "wb").write(bd.data)
"""


def partition(name: str) -> tuple[int, int]:
    for line in (ROOT / "boards" / "ESP32_PKCS11" / "partitions.csv").read_text().splitlines():
        cols = [c.strip() for c in line.split("#", 1)[0].split(",")]
        if cols[0] == name:
            return int(cols[3], 0), int(cols[4], 0)
    raise KeyError(name)


def put_main_py(unix_fw: Path, flash: Path, work: Path, main_py: str) -> None:
    off, size = partition("vfs")
    src, img, script = work / "main.py", work / "vfs.img", work / "mkfs.py"
    src.write_text(main_py)
    script.write_text(f"SIZE = {size}\nSRC = {str(src)!r}\nOUT = {str(img)!r}\n" + MKFS)
    subprocess.run([str(unix_fw), str(script)], check=True, capture_output=True, timeout=120)
    with open(flash, "r+b") as f:
        f.seek(off)
        f.write(img.read_bytes())


def boot(qemu: Path, pc_bios: Path, flash: Path, efuse: Path, log: Path, deadline: float = 600) -> dict:
    """Boots the image until main.py's P11EMU line (UART0 goes to a file); returns its JSON."""
    uart = log.with_suffix(".part")
    uart.unlink(missing_ok=True)
    # -icount: time inside the emulator follows the instructions run, not the host clock,
    # so the watchdogs do not fire when the host is busy (the PIN hashing of step 4 tripped
    # the interrupt watchdog without it on a loaded 2-core host).
    cmd = [str(qemu), "-M", "esp32c3", "-icount", "shift=3", "-display", "none", "-monitor", "none",
           "-serial", f"file:{uart}",
           "-drive", f"file={flash},if=mtd,format=raw",
           "-drive", f"file={efuse},if=none,format=raw,id=efuse",
           "-global", "driver=nvram.esp32c3.efuse,property=drive,value=efuse", "-L", str(pc_bios)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + deadline
    result = None
    try:
        while time.monotonic() < end and result is None and proc.poll() is None:
            text = uart.read_bytes() if uart.exists() else b""
            for line in text.splitlines():
                if line.startswith(b"P11EMU "):
                    result = json.loads(line[7:])
            if result is None:
                time.sleep(0.5)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with open(log, "ab") as f:
            f.write(uart.read_bytes() if uart.exists() else b"")
    if result is None:
        raise RuntimeError(f"no P11EMU line from main.py; see {log}")
    return result


def seed_material() -> tuple[bytes, bytes, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "esp32c3-emulated")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.DER), key.public_key()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "esp32c3")
    ap.add_argument("--unix", type=Path, default=ROOT / "build" / "unix" / "micropython")
    args = ap.parse_args()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

    build = args.cache / "project" / "build" / "esp32c3"
    qemu = args.cache / "qemu" / "build" / "qemu-system-riscv32"
    for p in (build / "micropython.bin", qemu, args.unix):
        if not p.exists():
            print(f"[esp32c3-qemu] {p} is missing (build.sh . --qemu, make unix)")
            return 2
    work = Path(tempfile.mkdtemp(prefix="esp32c3-qemu-"))
    flash, efuse, log = work / "flash-4MB.bin", work / "efuse.bin", work / "uart.log"
    subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32c3", "merge_bin", "-o", str(flash),
                    "--fill-flash-size", "4MB", "0x0", str(build / "bootloader" / "bootloader.bin"),
                    "0x8000", str(build / "partition_table" / "partition-table.bin"),
                    "0x10000", str(build / "micropython.bin")], check=True, capture_output=True)
    efuse_image(efuse)
    key_pem, cert_der, public_key = seed_material()
    digest = hashlib.sha256(b"CertificateVerify stand-in").digest()
    ok = True

    def check(what: str, cond: bool) -> None:
        nonlocal ok
        print(f"  {'ok  ' if cond else 'FAIL'}  {what}")
        ok = ok and cond

    run = lambda: boot(qemu, args.cache / "qemu" / "pc-bios", flash, efuse, log)  # noqa: E731
    t0 = time.monotonic()
    put_main_py(args.unix, flash, work, step(HEAP))
    heap = run()
    print(f"[esp32c3-qemu] boot 1 to main.py in {time.monotonic() - t0:.0f} s; heap: {json.dumps(heap)}")
    check("boot formats the blank token partition", b"is blank: formatting it" in log.read_bytes())
    check("_pkcs11 and _p11tls import; C_Initialize works", "import" in heap and "error" not in heap)

    put_main_py(args.unix, flash, work, step(SEED, KEY=key_pem, CERT=cert_der))
    seed = run()
    check(f"boot 2, seed provisioning: key and certificate objects created {seed}",
          isinstance(seed.get("key"), int) and isinstance(seed.get("cert"), int))

    # a fresh vfs image: only the token partition carries the objects over
    put_main_py(args.unix, flash, work, step(SIGN, DIGEST=digest))
    sig = run()
    sig = bytes.fromhex(sig.get("sig", ""))
    try:
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        public_key.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        verified = len(sig) == 64
    except Exception:
        verified = False
    check("boot 3, seed TLS sequence: C_Sign's signature verifies with the certificate's key", verified)

    put_main_py(args.unix, flash, work, step(LOCK))
    lock = run()
    print(f"[esp32c3-qemu] boot 4, lock/unlock: {json.dumps(lock)}")
    check("PINs set (C_InitToken, SO login, C_InitPIN, user login)",
          [lock.get(k) for k in ("init_token", "so_login", "init_pin", "user_login")] == ["OK"] * 4)
    check("private key visible when unlocked, hidden after C_Logout and after a wrong PIN",
          lock.get("keys_unlocked") == 1 and lock.get("keys_locked") == 0
          and lock.get("keys_after_wrong_pin") == 0 and lock.get("wrong_pin") == "CKR_PIN_INCORRECT")
    check("unlocked again with the right PIN, and it signs",
          lock.get("login_again") == "OK" and lock.get("keys_unlocked_again") == 1 and lock.get("sig_len") == 64)
    print(f"[esp32c3-qemu] {'done' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s (UART log: {log})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
