"""_pkcs11 frees what it allocates, on success, on error and when memory runs out.

On the qemu board mbedTLS allocates from MicroPython's heap through tracked
allocations that the garbage collector never frees: a context leaked on some
path shows up as heap still in use after gc.collect(). On unix mbedTLS uses
the C heap, so a leak there shows up in the process's resident size.
The out-of-memory sweep makes allocations fail at every point of each
operation and then checks that the heap is back where it was and that the
operations still give right answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cmodule import CModule

DEVICE_SCRIPT = r"""
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
"""


def _make_inputs(cmodule: CModule, folder: Path) -> None:
    o = cmodule.openssl
    o("genrsa", "-traditional", "-out", "m_rsa.pem", "2048")
    o("ecparam", "-name", "prime256v1", "-genkey", "-out", "m_ec.pem")
    o("req", "-x509", "-new", "-key", "m_ec.pem", "-subj", "/CN=mem", "-days", "2", "-out", "m_cert.pem")
    o("pkcs8", "-topk8", "-in", "m_ec.pem", "-v2", "aes-128-cbc", "-passout", "pass:x", "-out", "m_enc.pem")
    if folder != cmodule.work_dir:
        for name in ("m_rsa.pem", "m_ec.pem", "m_cert.pem", "m_enc.pem"):
            (folder / name).write_bytes((cmodule.work_dir / name).read_bytes())


def _results(output: str) -> dict[str, list[str]]:
    values = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isupper():
            values[parts[0]] = parts[1:]
    return values


def _script(rounds: int, slacks: list[int]) -> str:
    return f"ROUNDS = {rounds}\nSLACKS = {slacks!r}\n" + DEVICE_SCRIPT


def _check(out: str, heap_limit: int, rss_limit_kb: int | None) -> None:
    r = _results(out)
    assert r["STILL_OK"] == ["True"], out
    first, second = (int(v) for v in r["OOM_FAILURES"])
    assert first > 0 and second > 0, "the sweep never ran out of memory:\n" + out
    # The first batch may still settle caches; the second must not grow.
    assert int(r["HEAP_GROWTH"][1]) <= heap_limit, out
    assert int(r["OOM_HEAP_GROWTH"][1]) <= heap_limit, out
    if rss_limit_kb is not None:
        assert int(r["RSS_GROWTH_KB"][1]) <= rss_limit_kb, out
        assert int(r["OOM_RSS_GROWTH_KB"][1]) <= rss_limit_kb, out


def test_no_leaks_and_clean_out_of_memory_on_unix(cmodule):
    _make_inputs(cmodule, cmodule.work_dir)
    # A small MicroPython heap; mbedTLS uses the C heap here, so the sweep
    # hits our own allocations (results, PEM buffers) and the RSS shows leaks.
    slacks = list(range(0, 1200, 7)) + list(range(1200, 6000, 97))
    out = cmodule.fw.run(_script(rounds=150, slacks=slacks), heap="96k")
    # 150 rounds x 13 calls: leaking even 16 bytes per call would show.
    _check(out, heap_limit=256, rss_limit_kb=24)


@pytest.mark.qemu
@pytest.mark.slow
def test_no_leaks_and_clean_out_of_memory_on_qemu(cmodule, qemu_board, tmp_path):
    _make_inputs(cmodule, cmodule.work_dir)
    for name in ("m_rsa.pem", "m_ec.pem", "m_cert.pem", "m_enc.pem"):
        qemu_board.cp_to(cmodule.work_dir / name, name)
    script = tmp_path / "mem.py"
    script.write_text(_script(rounds=2, slacks=list(range(0, 12000, 173))))
    out = qemu_board.run_file(script, timeout=3000)
    # mbedTLS allocates tracked blocks from the MicroPython heap here, which
    # gc never frees: a leaked context (>= 100 bytes) would stay in use.
    _check(out, heap_limit=64, rss_limit_kb=None)
