# test_cmodule_memory.py: leaks and out-of-memory sweeps of _pkcs11 (ROUNDS and
# SLACKS are set in front of this by the test).
import gc
import _pkcs11 as P

def rd(name):
    with open(name, 'rb') as f:
        return f.read()

RSA = rd('m_rsa.pem')
EC = rd('m_ec.pem')
CERT = rd('m_cert.pem')
ENC = rd('m_enc.pem')
k = P.parse_private_key(RSA)
KEY = tuple(k[f] for f in ('n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qinv'))
BAD = (KEY[0], KEY[1], KEY[2][:-1] + bytes([KEY[2][-1] ^ 2])) + KEY[3:]
E = P.parse_private_key(EC)
H = bytes(range(32))
INFO = bytes(51)
SIG = P.rsa_sign_pss(KEY, H, 'sha256', 32)

OPS = [
    ('parse rsa', lambda: P.parse_private_key(RSA)),
    ('parse ec', lambda: P.parse_private_key(EC)),
    ('parse cert', lambda: P.parse_certificate(CERT)),
    ('parse enc (error)', lambda: P.parse_private_key(ENC)),
    ('parse garbage (error)', lambda: P.parse_private_key(b'\x30\x82\x01\x00' + bytes(300))),
    ('sign pkcs1', lambda: P.rsa_sign_pkcs1(KEY, INFO)),
    ('sign pss', lambda: P.rsa_sign_pss(KEY, bytes(64), 'sha512', 0)),
    ('sign bad key (error)', lambda: P.rsa_sign_pkcs1(BAD, INFO)),
    ('verify pss', lambda: P.rsa_verify_pss(KEY[0], KEY[1], H, 'sha256', 32, SIG)),
    ('verify pkcs1', lambda: P.rsa_verify_pkcs1(KEY[0], KEY[1], INFO, SIG)),
    ('ec generate', P.ec_generate),
    ('ec sign', lambda: P.ec_sign(E['d'], H)),
    ('hash', lambda: P.hash_new('sha384').digest()),
]

def run_all():
    for name, f in OPS:
        try:
            f()
        except (ValueError, MemoryError):
            pass

def heap_used():
    gc.collect()
    gc.collect()
    return gc.mem_alloc()

def rss_kb():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def fill(slack):
    # Ballast that leaves about `slack` bytes of the heap free.
    keep = []
    size = 1 << 16
    while size >= 16:
        if gc.mem_free() - size < slack:
            size //= 2
            continue
        try:
            keep.append(bytearray(size))
        except MemoryError:
            size //= 2
    return keep

def sweep():
    # Leave `slack` bytes free, run each operation: allocations fail at
    # every point along the way.
    failures = 0
    for name, f in OPS:
        for slack in SLACKS:
            gc.collect()
            ballast = fill(slack)
            try:
                f()
            except MemoryError:
                failures += 1
            except ValueError:
                pass
            ballast = None
    return failures

# A leak grows with the number of calls; measurement noise does not. So
# compare the growth over a second batch of calls with the first.
run_all()
h0, r0 = heap_used(), rss_kb()
for i in range(ROUNDS):
    run_all()
h1, r1 = heap_used(), rss_kb()
for i in range(ROUNDS):
    run_all()
h2, r2 = heap_used(), rss_kb()
print('HEAP_GROWTH', h1 - h0, h2 - h1)
print('RSS_GROWTH_KB', r1 - r0, r2 - r1)
f1 = sweep()
h3, r3 = heap_used(), rss_kb()
f2 = sweep()
h4, r4 = heap_used(), rss_kb()
print('OOM_FAILURES', f1, f2)
print('OOM_HEAP_GROWTH', h3 - h2, h4 - h3)
print('OOM_RSS_GROWTH_KB', r3 - r2, r4 - r3)

# Still right after all that.
s = P.rsa_sign_pkcs1(KEY, INFO)
ok = P.rsa_verify_pkcs1(KEY[0], KEY[1], INFO, s)
ok = ok and P.parse_private_key(RSA)['d'] == KEY[2]
ok = ok and P.ec_verify(E['q'], H, P.ec_sign(E['d'], H))
print('STILL_OK', ok)
