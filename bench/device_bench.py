# Runs ON THE FIRMWARE (unix or the qemu board), driven by bench/bench.py, which
# prepends the parameters:
#   PHASE    "prims": load the bench keys (files, deleted at once), put them in
#            the token, then time the crypto primitives with BACKENDS in turn;
#            "token": heap deltas and token-level calls with BACKENDS[0]
#   BACKENDS ("c", "pure") or ("pure",) ...: pkcs11.crypto.use() modes
#   RUNS     {op: {backend: samples}}; an op missing there is skipped
#   QEMU     True: clock = time.time_ns() (under -icount the host turns ns
#            into instructions); False: time.ticks_us()
#   TLS_PORT an `openssl s_server` port on 127.0.0.1, or None
#   FILES    None: inputs are files; or {name: bytes}, inputs for a board without
#            a filesystem (the bench's VIRT_RV32 board), where "prims" skips the token
# Every result is one line: "@B " + JSON {"phase", "backend", "op", "ns"|"bytes"}.
# Nothing here prints key material: keys are only loaded and handed on.
import gc
import json
import os
import time

if QEMU:
    _now = time.time_ns

    def _diff(a, b):
        return b - a
else:
    _now = time.ticks_us

    def _diff(a, b):
        return time.ticks_diff(b, a) * 1000

_DIR = "/" if QEMU else ""
_P256 = b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07"
_DI256 = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
_DIGEST = bytes(range(32))
_KB = bytes(range(256)) * 4
EC_LABEL = b"Device Priv TLS Key"
EC_CERT = b"Device Cert"
RSA_LABEL = b"Bench RSA Key"
RSA_CERT = b"Bench RSA Cert"


def emit(backend, op, key, value):
    print("@B " + json.dumps({"phase": PHASE, "backend": backend, "op": op, key: value}))


def _read(name, remove=False):
    if FILES is not None:
        return FILES.pop(name) if remove else FILES[name]
    path = _DIR + name
    with open(path, "rb") as f:
        data = f.read()
    if remove:
        os.remove(path)
    return data


def timed(backend, op, fn, setup=None, inner=1):
    """One warm-up call, then RUNS[op][backend] samples of `inner` calls each;
    emits ns per call. `setup` (untimed) runs before each sample."""
    runs = RUNS.get(op, {}).get(backend, 0)
    if not runs:
        return
    if setup:
        setup()
    fn()
    out = []
    for _ in range(runs):
        if setup:
            setup()
        gc.collect()
        t0 = _now()
        for _ in range(inner):
            fn()
        t1 = _now()
        out.append(_diff(t0, t1) // inner if inner == 1 else _diff(t0, t1) / inner)
    emit(backend, op, "ns", out)


# -- phase "prims": provision the token, then the crypto primitives -----------

def provision(p11, h, ec, rsa):
    def make(t):
        return p11.C_CreateObject(h, t)

    make([(0x0, 3), (0x100, 3), (0x1, True), (0x3, EC_LABEL), (0x108, True),
          (0x180, _P256), (0x11, ec["d"])])
    make([(0x0, 3), (0x100, 0), (0x1, True), (0x3, RSA_LABEL), (0x108, True),
          (0x120, rsa["n"]), (0x122, rsa["e"]), (0x123, rsa["d"]), (0x124, rsa["p"]),
          (0x125, rsa["q"]), (0x126, rsa["dp"]), (0x127, rsa["dq"]), (0x128, rsa["qinv"])])
    for label, name in ((EC_CERT, "bench_ec.der"), (RSA_CERT, "bench_rsa.der"),
                        (b"Root Cert", "bench_root.der")):
        # the root is a trust anchor (CKA_TRUSTED 0x86): p11tls uses only such a root
        make([(0x0, 1), (0x80, 0), (0x1, True), (0x3, label), (0x11, _read(name)),
              (0x86, label == b"Root Cert")])


def prims():
    from pkcs11 import crypto
    import pkcs11
    ec = crypto.parse_private_key(_read("bench_ec.pem", True))
    rsa = crypto.parse_private_key(_read("bench_rsa.pem", True))
    if FILES is None:
        p11 = pkcs11.C_GetFunctionList()
        p11.C_Initialize()
        h = p11.C_OpenSession(0, 6)
        provision(p11, h, ec, rsa)
        p11.C_CloseSession(h)
        p11.C_Finalize()
    d, q = ec["d"], ec["q"]
    key = (rsa["n"], rsa["e"], rsa["d"], rsa["p"], rsa["q"], rsa["dp"], rsa["dq"], rsa["qinv"])
    ec = rsa = None
    di = _DI256 + _DIGEST
    for b in BACKENDS:
        crypto.use(b)
        esig = crypto.ec_sign(d, _DIGEST)
        rsig = crypto.rsa_sign_pkcs1(key, di)
        timed(b, "ec_keygen", crypto.ec_generate)
        timed(b, "ec_sign", lambda: crypto.ec_sign(d, _DIGEST))
        timed(b, "ec_verify", lambda: crypto.ec_verify(q, _DIGEST, esig))
        timed(b, "rsa_sign", lambda: crypto.rsa_sign_pkcs1(key, di))
        timed(b, "rsa_verify", lambda: crypto.rsa_verify_pkcs1(key[0], key[1], di, rsig))
        timed(b, "pss_sign", lambda: crypto.rsa_sign_pss(key, _DIGEST, "sha256", 32))
        for name in ("sha256", "sha384"):
            def one(name=name):
                x = crypto.hash_new(name)
                x.update(_KB)
                x.digest()
            timed(b, name + "_1k", one, inner=20 if name == "sha256" else 1)
        esig = rsig = None
    d = key = None


# -- phase "token": heap deltas and token-level calls -------------------------

def _find(p11, h, label):
    p11.C_FindObjectsInit(h, [(0x3, label)])
    r = p11.C_FindObjects(h, 4)
    p11.C_FindObjectsFinal(h)
    return r


def _heap(backend, op, before):
    gc.collect()
    after = gc.mem_alloc()
    emit(backend, op, "bytes", after - before)
    return after


def _alloc(backend, op, fn):
    """Bytes allocated by one call with the collector off: exact, or None when
    that exceeds the free heap (`free`; the call itself works with the collector on)."""
    gc.collect()
    free = gc.mem_free()
    gc.disable()
    try:
        a = gc.mem_alloc()
        fn()
        n = gc.mem_alloc() - a
    except MemoryError:
        n = None
    gc.enable()
    print("@B " + json.dumps({"phase": PHASE, "backend": backend, "op": op, "bytes": n,
                              "free": free}))


def token():
    b = BACKENDS[0]
    gc.collect()
    m = gc.mem_alloc()
    import pkcs11
    m = _heap(b, "heap_import", m)
    from pkcs11 import crypto
    crypto.use(b)
    gc.collect()
    m = gc.mem_alloc()
    p11 = pkcs11.C_GetFunctionList()
    p11.C_Initialize()
    m = _heap(b, "heap_initialize", m)
    h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], 6)
    m = _heap(b, "heap_session", m)
    kec = _find(p11, h, EC_LABEL)[0]
    krsa = _find(p11, h, RSA_LABEL)[0]
    di = _DI256 + _DIGEST

    def sign_ec():
        p11.C_SignInit(h, 0x1041, kec)
        p11.C_Sign(h, _DIGEST)

    def sign_rsa():
        p11.C_SignInit(h, 0x1, krsa)
        p11.C_Sign(h, di)

    gc.collect()
    m = gc.mem_alloc()
    sign_ec()
    m = _heap(b, "heap_first_sign_ec", m)
    sign_rsa()
    m = _heap(b, "heap_first_sign_rsa", m)
    _alloc(b, "heap_alloc_sign_ec", sign_ec)
    _alloc(b, "heap_alloc_sign_rsa", sign_rsa)

    timed(b, "tok_sign_ec", sign_ec)
    timed(b, "tok_sign_rsa", sign_rsa)
    timed(b, "tok_find", lambda: _find(p11, h, EC_CERT))
    der = _read("bench_ec.der")
    made = []

    def create():
        made.append(p11.C_CreateObject(h, [(0x0, 1), (0x80, 0), (0x1, True),
                                           (0x3, b"Bench Cert"), (0x11, der)]))

    def clean():
        while made:
            p11.C_DestroyObject(h, made.pop())

    timed(b, "tok_create_cert", create, setup=clean)
    clean()
    if TLS_PORT:
        import p11tls

        def tls(label, cert):
            def run():
                s = p11tls.connect("127.0.0.1", TLS_PORT, server_hostname="localhost",
                                   session=h, key_label=label, cert_label=cert)
                s.close()
            return run

        def tls_nodelay():
            import socket
            ai = socket.getaddrinfo("127.0.0.1", TLS_PORT, 0, socket.SOCK_STREAM)[0]
            s = socket.socket(ai[0], socket.SOCK_STREAM)
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (Linux numbers)
            s.connect(ai[-1])
            p11tls.wrap_socket(s, "localhost", session=h, key_label=EC_LABEL,
                               cert_label=EC_CERT).close()

        timed(b, "tls_ec", tls(EC_LABEL, EC_CERT))
        timed(b, "tls_rsa", tls(RSA_LABEL, RSA_CERT))
        timed(b, "tls_ec_nodelay", tls_nodelay)
    p11.C_CloseSession(h)
    p11.C_Finalize()


if PHASE == "prims":
    prims()
else:
    token()
print("@B done")
