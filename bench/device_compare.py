# Runs ON THE FIRMWARE, driven by bench/compare.py, which prepends:
#   PHASE  "mbedtls"  p256-m / our RSA (_pkcs11) against mbedTLS's own code (_bench_mbedtls)
#          "fill"     store objects until the token holds COUNT
#          "scale"    C_Initialize, FindObjects by label, CreateObject (+ flash bytes)
#          "tls_ram"  TLS connect with the token's key and with the key in RAM, alternating
#          "boot"     token open, TLS, MQTT CONNECT, first PUBACK (unix, local broker)
#   CLOCK  "time_ns" (qemu MPS2: TIMER0 under -icount), "benchclk" (VIRT_RV32:
#          instret), "ticks" (unix wall time); every value is emitted as ns
#   RUNS   samples per timed cell;  FILES  {name: bytes} or None (read files, delete keys)
#   PORT, COUNT, THING: phase parameters
# Every result is one line "@C " + JSON; "@C done" at the end. No key bytes are printed.
import gc
import json

if CLOCK == "benchclk":
    import _benchclk

    _now = _benchclk.count

    def _diff(a, b):
        return b - a
elif CLOCK == "time_ns":
    import time

    _now = time.time_ns

    def _diff(a, b):
        return b - a
else:
    import time

    _now = time.ticks_us

    def _diff(a, b):
        return time.ticks_diff(b, a) * 1000

_DIGEST = bytes(range(32))
_DI256 = b"\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20"
EC_LABEL = b"Device Priv TLS Key"
EC_CERT = b"Device Cert"


def emit(op, **kw):
    kw["op"] = op
    print("@C " + json.dumps(kw))


def _read(name, remove=False):
    if FILES is not None:
        return FILES.pop(name) if remove else FILES[name]
    import os
    path = ("/" if CLOCK == "time_ns" else "") + name
    with open(path, "rb") as f:
        data = f.read()
    if remove:
        os.remove(path)
    return data


def timed(op, fn, runs=None, setup=None):
    """One warm-up call, then `runs` samples; emits ns per call."""
    runs = runs or RUNS
    if setup:
        setup()
    fn()
    out = []
    for _ in range(runs):
        if setup:
            setup()
        gc.collect()
        t0 = _now()
        fn()
        out.append(_diff(t0, _now()))
    emit(op, ns=out)


def mbedtls():
    import _pkcs11 as P
    import _bench_mbedtls as M
    ec = P.parse_private_key(_read("bench_ec.pem", True))
    rsa = P.parse_private_key(_read("bench_rsa.pem", True))
    d, q = ec["d"], ec["q"]
    key = tuple(rsa[f] for f in ("n", "e", "d", "p", "q", "dp", "dq", "qinv"))
    ec = rsa = None
    di = _DI256 + _DIGEST
    timed("p256m_keygen", P.ec_generate)
    timed("p256m_sign", lambda: P.ec_sign(d, _DIGEST))
    sig = P.ec_sign(d, _DIGEST)
    timed("p256m_verify", lambda: P.ec_verify(q, _DIGEST, sig))
    M.ec_load(d)
    timed("mbed_ec_keygen", M.ec_keygen)
    timed("mbed_ec_sign", lambda: M.ec_sign(_DIGEST))
    msig = M.ec_sign(_DIGEST)
    assert M.ec_verify(_DIGEST, msig) and P.ec_verify(q, _DIGEST, msig)
    timed("mbed_ec_verify", lambda: M.ec_verify(_DIGEST, msig))
    timed("ours_rsa_sign", lambda: P.rsa_sign_pkcs1(key, di))
    rsig = P.rsa_sign_pkcs1(key, di)
    timed("ours_rsa_verify", lambda: P.rsa_verify_pkcs1(key[0], key[1], di, rsig))
    M.rsa_load(_read("bench_rsa.key.der", True))
    timed("mbed_rsa_sign", lambda: M.rsa_sign(_DIGEST))
    assert M.rsa_sign(_DIGEST) == rsig  # PKCS#1 v1.5 is deterministic: same key, same bytes
    timed("mbed_rsa_verify", lambda: M.rsa_verify(_DIGEST, rsig))
    M.free()


def _p11():
    import pkcs11
    p11 = pkcs11.C_GetFunctionList()
    return p11


def _room():
    # the token's default limit is 32 objects: the scaling rows need 64 and more
    import pkcs11
    if COUNT and COUNT + 8 > 32:
        pkcs11.configure(max_objects=COUNT + 8)


def _cert_template(label, der):
    return [(0x0, 1), (0x80, 0), (0x1, True), (0x3, label), (0x11, der)]


def _count(p11, h):
    p11.C_FindObjectsInit(h, [])
    n = len(p11.C_FindObjects(h, 1000))
    p11.C_FindObjectsFinal(h)
    return n


def fill():
    _room()
    p11 = _p11()
    p11.C_Initialize()
    h = p11.C_OpenSession(0, 6)
    der = _read("bench_ec.der")
    n = _count(p11, h)
    while n < COUNT:
        p11.C_CreateObject(h, _cert_template(b"Filler %d" % n, der))
        n += 1
    p11.C_CloseSession(h)
    p11.C_Finalize()
    emit("fill", objects=n)


class _CountingFlash:
    """The board's flash with a byte counter (littlefs's extended block interface)."""

    def __init__(self, bdev):
        self.b = bdev
        self.written = 0
        self.erased = 0

    def readblocks(self, n, buf, off=0):
        return self.b.readblocks(n, buf, off)

    def writeblocks(self, n, buf, off=None):
        self.written += len(buf)
        if off is None:
            return self.b.writeblocks(n, buf)
        return self.b.writeblocks(n, buf, off)

    def ioctl(self, op, arg):
        if op == 6:
            self.erased += 1
        return self.b.ioctl(op, arg)


def scale():
    gc.collect()
    import pkcs11
    _room()
    t0 = _now()
    p11 = pkcs11.C_GetFunctionList()
    p11.C_Initialize()
    emit("scale_init", ns=[_diff(t0, _now())], objects=COUNT)
    h = p11.C_OpenSession(0, 6)
    assert _count(p11, h) == COUNT, _count(p11, h)
    label = b"Filler %d" % (COUNT - 1)

    def find():
        p11.C_FindObjectsInit(h, [(0x3, label)])
        p11.C_FindObjects(h, 4)
        p11.C_FindObjectsFinal(h)

    timed("scale_find", find)
    der = _read("bench_ec.der")
    made = []

    def create():
        made.append(p11.C_CreateObject(h, _cert_template(b"Bench Cert", der)))

    def clean():
        while made:
            p11.C_DestroyObject(h, made.pop())

    timed("scale_create", create, setup=clean)
    clean()
    p11.C_CloseSession(h)
    p11.C_Finalize()
    if CLOCK == "time_ns":
        # wear: bytes the filesystem writes to flash per C_CreateObject, measured
        # through a counting wrapper around the same block device (untimed)
        import vfs
        import qemu
        vfs.umount("/")
        fl = _CountingFlash(qemu.Flash())
        vfs.mount(vfs.VfsLfs2(fl), "/")
        p11.C_Initialize()
        h = p11.C_OpenSession(0, 6)
        w = []
        for _ in range(RUNS):
            a, e = fl.written, fl.erased
            create()
            w.append((fl.written - a, fl.erased - e))
            clean()
        p11.C_CloseSession(h)
        p11.C_Finalize()
        emit("scale_wear", bytes=[x[0] for x in w], erases=[x[1] for x in w])


def tls_ram():
    import socket
    import tls
    import p11tls
    key = _read("bench_ec.key.der", True)   # the same key as the token's, in RAM
    cert = _read("bench_ec.der")
    ca = _read("bench_root.der")
    p11 = _p11()
    p11.C_Initialize()
    h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], 6)

    def token():
        p11tls.connect("127.0.0.1", PORT, server_hostname="localhost", session=h,
                       key_label=EC_LABEL, cert_label=EC_CERT).close()

    def ram():
        ai = socket.getaddrinfo("127.0.0.1", PORT, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        s.settimeout(10)
        s.setsockopt(6, 1, 1)  # TCP_NODELAY, as p11tls.connect
        s.connect(ai[-1])
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED
        ctx.load_verify_locations(ca)
        ctx.load_cert_chain(cert, key)
        ctx.wrap_socket(s, server_hostname="localhost").close()

    token()
    ram()
    a, b = [], []
    for i in range(RUNS):
        for fn, out in ((token, a), (ram, b)) if i % 2 == 0 else ((ram, b), (token, a)):
            gc.collect()
            t0 = _now()
            fn()
            out.append(_diff(t0, _now()))
    emit("tls_token", ns=a)
    emit("tls_ram", ns=b)
    p11.C_CloseSession(h)
    p11.C_Finalize()


def boot():
    print("@C start")
    t_start = _now()
    import pkcs11
    import p11tls
    import mqtt
    t_import = _now()
    p11 = pkcs11.C_GetFunctionList()
    p11.C_Initialize()
    h = p11.C_OpenSession(p11.C_GetSlotList(True)[0], 6)
    t_token = _now()
    sock = p11tls.connect("127.0.0.1", PORT, server_hostname="localhost", session=h,
                          key_label=EC_LABEL, cert_label=EC_CERT)
    t_tls = _now()
    c = mqtt.MQTTClient(THING, lambda: sock, keepalive=60)
    c.connect()
    t_conn = _now()
    c.publish("bench/%s/boot" % THING, b"first", qos=1)
    t_pub = _now()
    c.disconnect()
    p11.C_CloseSession(h)
    p11.C_Finalize()
    emit("boot", ns=[_diff(t_start, t_import), _diff(t_import, t_token), _diff(t_token, t_tls),
                     _diff(t_tls, t_conn), _diff(t_conn, t_pub)])


{"mbedtls": mbedtls, "fill": fill, "scale": scale, "tls_ram": tls_ram, "boot": boot}[PHASE]()
print("@C done")
