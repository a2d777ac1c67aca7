"""The device packages as micropython-lib style packages (modules/<name>/manifest.py and
package.json), and `mpremote mip install` of the pure-Python token onto STOCK unix
MicroPython built from the same source tree (`make stock-unix`: the standard variant, no
C module, nothing frozen), where the seed's sequence runs with the pure backend.

Why mpremote over a pty: the stock firmware has no `mip` module (it comes from
micropython-lib, which Debian's MicroPython source lacks), so a device-side install is
impossible offline; mpremote reads the package from a local path (or an http URL, here
a 127.0.0.1 server) and writes the files over the raw REPL, as on a board.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from harness.paths import BUILD, MPREMOTE, ROOT
from harness.token_files import last_json, verify_ecdsa_raw
from harness.unix import UnixPtyBoard

MODULES = ROOT / "modules"
PACKAGES = ("pkcs11", "p11tls", "p11csr", "p11boot", "fleetprov", "p11bridge")
STOCK_BIN = BUILD / "stock-unix" / "micropython"


def _manifestfile():
    sys.path.insert(0, str(BUILD / "micropython" / "tools"))
    try:
        import manifestfile
    finally:
        sys.path.pop(0)
    return manifestfile


def _frozen(manifest: Path):
    """(target paths, metadata) of a manifest, with modules/ as a library for require()."""
    mf = _manifestfile()
    stub = BUILD / "mpylib"
    m = mf.ManifestFile(mf.MODE_FREEZE, {"MPY_DIR": str(BUILD / "micropython"),
                                        "MPY_LIB_DIR": str(stub)})
    m.add_library("pkcs11-token", str(MODULES))
    m.execute(str(manifest))
    return sorted(f.target_path for f in m.files()), m.metadata()


def _package_json(name: str) -> dict:
    return json.loads((MODULES / name / "package.json").read_text())


@pytest.fixture(scope="module")
def mpy_tools():
    if not (BUILD / "micropython" / "tools" / "manifestfile.py").exists():
        pytest.fail(f"{BUILD}/micropython is missing: run `make sources` first")


@pytest.mark.parametrize("name", PACKAGES)
def test_package_json_lists_what_the_manifest_freezes(mpy_tools, name: str) -> None:
    files, meta = _frozen(MODULES / name / "manifest.py")
    pj = _package_json(name)
    text = (MODULES / name / "manifest.py").read_text()
    required = re.findall(r'^require\("([\w.-]+)"\)', text, re.M)
    deps_files = set()
    for dep in required:
        deps_files |= set(_frozen(MODULES / dep / "manifest.py")[0])
    own = [f for f in files if f not in deps_files]
    # the package's own files, each fetched from the same relative path
    assert sorted(t for t, _ in pj["urls"]) == own
    assert all(t == u for t, u in pj["urls"])
    for _, url in pj["urls"]:
        assert (MODULES / name / url).is_file(), url
    # deps: the required packages, by their package.json from the repository root
    assert [d for d, _ in pj["deps"]] == [f"modules/{dep}/package.json" for dep in required]
    assert meta.version == pj["version"] and meta.description
    for dep, version in pj["deps"]:
        assert (ROOT / dep).is_file() and version == json.loads((ROOT / dep).read_text())["version"]


def test_pkcs11_version_is_the_packages(mpy_tools) -> None:
    init = (MODULES / "pkcs11" / "pkcs11" / "__init__.py").read_text()
    assert f'__version__ = "{_package_json("pkcs11")["version"]}"' in init


def test_boards_freeze_exactly_the_packages(mpy_tools) -> None:
    """boards/manifest_common.py require()s the packages: the same files as before the
    move (nothing lost, nothing twice), mqtt included."""
    files, _ = _frozen(ROOT / "boards" / "manifest_common.py")
    assert len(files) == len(set(files))
    want = set()
    for name in (*PACKAGES, "mqtt"):
        want |= {t for t, _ in _package_json(name)["urls"]}
    assert set(files) == want
    for name in ("pkcs11/__init__.py", "pkcs11/token.py", "pkcs11/pythonic.py", "pkcs11/der.py",
                 "pkcs11/pure/p256.py", "p11tls.py", "p11csr.py", "p11boot.py", "mqtt/__init__.py"):
        assert name in files


# -- mpremote mip install onto stock MicroPython ------------------------------------------

@pytest.fixture(scope="module")
def stock_unix() -> Path:
    """Stock unix MicroPython from the same source tree (built once: `make stock-unix`)."""
    proc = subprocess.run(["make", "-s", "--no-print-directory", "stock-unix", f"BUILD={BUILD}",
                           f"JOBS={os.environ.get('JOBS', '2')}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert STOCK_BIN.exists()
    return STOCK_BIN


@pytest.fixture
def stock_board(stock_unix: Path, tmp_path: Path):
    token = tmp_path / "token"
    work = tmp_path / "stockwork"
    token.mkdir()
    work.mkdir()
    board = UnixPtyBoard(token, work, binary=stock_unix)
    try:
        yield board
    finally:
        board.stop()


def _mip(board: UnixPtyBoard, package: str) -> str:
    # --target lib: the firmware's working folder (the stock unix default, ~/.micropython/lib,
    # would be this machine's HOME)
    proc = subprocess.run([str(MPREMOTE), "connect", board.pty, "mip", "install", "--target", "lib",
                           package], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


SEED_ON_STOCK = """
import sys
sys.path.append("lib")
import json, pkcs11
from pkcs11 import crypto
from pkcs11.constants import *
try:
    import _pkcs11
    c_module = True
except ImportError:
    c_module = False
p11 = pkcs11.C_GetFunctionList()
p11.C_Initialize()
slot = p11.C_GetSlotList(True)[0]
h = p11.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
pub, key = p11.C_GenerateKeyPair(
    h, CKM_EC_KEY_PAIR_GEN,
    [(CKA_TOKEN, True), (CKA_LABEL, b"Device Pub TLS Key"), (CKA_VERIFY, True),
     (CKA_EC_PARAMS, b"\\x06\\x08\\x2a\\x86\\x48\\xce\\x3d\\x03\\x01\\x07")],
    [(CKA_TOKEN, True), (CKA_LABEL, b"Device Priv TLS Key"), (CKA_SIGN, True)])
point = p11.C_GetAttributeValue(h, pub, [CKA_EC_POINT])[0]
p11.C_SignInit(h, CKM_ECDSA, key)
sig = p11.C_Sign(h, DIGEST)
p11.C_VerifyInit(h, CKM_ECDSA, pub)
p11.C_Verify(h, DIGEST, sig)
p11.C_VerifyInit(h, CKM_ECDSA, pub)
try:
    p11.C_Verify(h, bytes(32), sig)
    wrong = "verified"
except pkcs11.PKCS11Error as e:
    wrong = e.rv
p11.C_CloseSession(h)
p11.C_Finalize()
print(json.dumps({"c_module": c_module, "backend": crypto.which("ec_sign"), "point": point.hex(),
                  "sig": sig.hex(), "wrong": wrong, "implementation": sys.implementation._machine}))
"""

# A second run (after mpremote's soft reset): the key is found by label in the token
# folder, signs again, and p11csr (installed with its pkcs11 dependency) makes a CSR.
AFTER_RESTART = """
import sys
sys.path.append("lib")
import json, pkcs11, p11csr
from pkcs11.constants import CKO_PRIVATE_KEY
with pkcs11.open_session(rw=False) as s:
    key = s.get_key(object_class=CKO_PRIVATE_KEY, label=pkcs11.LABEL_DEVICE_PRIVATE_KEY)
    sig = key.sign(b"after restart")
    csr = p11csr.pem(p11csr.make_csr(s, key, "CN=stock-thing"))
print(json.dumps({"sig": sig.hex(), "csr": csr}))
"""


def _public_key(point_der: bytes) -> ec.EllipticCurvePublicKey:
    assert point_der[:2] == b"\x04\x41"
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point_der[2:])


def test_mip_install_pure_token_on_stock_micropython(stock_board: UnixPtyBoard) -> None:
    out = _mip(stock_board, str(MODULES / "pkcs11" / "package.json"))
    assert "Installing: lib/pkcs11/pure/p256.py" in out and "Done" in out
    installed = sorted(str(p.relative_to(stock_board.work_dir / "lib"))
                       for p in (stock_board.work_dir / "lib").rglob("*.py"))
    assert installed == sorted(t for t, _ in _package_json("pkcs11")["urls"])

    digest = hashlib.sha256(b"seed sequence on stock MicroPython").digest()
    res = last_json(stock_board.exec(f"DIGEST = {digest!r}\n" + SEED_ON_STOCK, timeout=300))
    # stock firmware: no C module, the pure backend signs
    assert res["c_module"] is False and res["backend"] == "pure"
    assert "pkcs11 token firmware" not in res["implementation"]
    assert res["wrong"] == 0xC0   # CKR_SIGNATURE_INVALID
    pub = _public_key(bytes.fromhex(res["point"]))
    verify_ecdsa_raw(pub, bytes.fromhex(res["sig"]), digest)
    # the records are in the token folder the firmware was given
    assert len(list(stock_board.token_dir.iterdir())) >= 3

    # p11csr with its dependency (pkcs11 again: same files, rewritten)
    out = _mip(stock_board, "modules/p11csr/package.json")
    assert "Installing: lib/p11csr.py" in out
    res = last_json(stock_board.exec(AFTER_RESTART, timeout=300))
    verify_ecdsa_raw(pub, bytes.fromhex(res["sig"]), hashlib.sha256(b"after restart").digest())
    csr = x509.load_pem_x509_csr(res["csr"].encode())
    assert csr.is_signature_valid
    assert csr.public_key().public_numbers() == pub.public_numbers()
    assert csr.subject.rfc4514_string() == "CN=stock-thing"
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)


def test_mip_install_from_a_local_http_server(stock_board: UnixPtyBoard) -> None:
    """The same package from an http URL (a 127.0.0.1 server started here, stopped by PID)."""
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
                              cwd=MODULES, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()   # "Serving HTTP on 127.0.0.1 port N ..."
        m = re.search(r"port (\d+)", line)
        assert m, line
        out = _mip(stock_board, f"http://127.0.0.1:{m.group(1)}/pkcs11/package.json")
        assert "Installing: lib/pkcs11/token.py" in out and "Done" in out
        res = last_json(stock_board.exec("""
import sys, json
sys.path.append("lib")
import pkcs11
with pkcs11.open_session() as s:
    pub, priv = s.generate_keypair(label="http")
    print(json.dumps({"ok": pub.verify(b"x", priv.sign(b"x")), "version": pkcs11.__version__}))
""", timeout=300))
        assert res == {"ok": True, "version": _package_json("pkcs11")["version"]}
    finally:
        server.terminate()
        server.wait(timeout=10)
