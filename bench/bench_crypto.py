# Speed of the _pkcs11 C crypto core, measured on the firmware. Measurement
# only: it prints a table and asserts nothing.
#
# RSA rows need an RSA-2048 key (a throwaway, made for the benchmark), found
# as the first argument, or as bench_rsa.pem / bench_rsa.der in the current
# folder. Without one the RSA rows are skipped.
#
#   unix:  openssl genrsa -out /tmp/bench_rsa.pem 2048
#          build/unix/micropython bench/bench_crypto.py /tmp/bench_rsa.pem
#   board: mpremote fs cp /tmp/bench_rsa.pem :bench_rsa.pem
#          mpremote run bench/bench_crypto.py
#
# Each operation repeats until BUDGET_MS have passed (at least once).
import sys
import time

import _pkcs11 as P

BUDGET_MS = 1000
MAX_RUNS = 2000


def measure(fn):
    runs = 0
    t0 = time.ticks_us()
    while True:
        fn()
        runs += 1
        elapsed = time.ticks_diff(time.ticks_us(), t0)
        if elapsed >= BUDGET_MS * 1000 or runs >= MAX_RUNS:
            return runs, elapsed


def rsa_key_file():
    names = list(sys.argv[1:]) + ["bench_rsa.pem", "bench_rsa.der"]
    for name in names:
        try:
            with open(name, "rb") as f:
                return name, f.read()
        except OSError:
            pass
    return None, None


def main():
    digest = P.hash_new("sha256")
    digest.update(b"benchmark message")
    h = digest.digest()
    d, q = P.ec_generate()
    sig = P.ec_sign(d, h)
    block = bytes(1024)

    def sha256_1k():
        o = P.hash_new("sha256")
        o.update(block)
        o.digest()

    ops = [
        ("ec_generate", P.ec_generate),
        ("ec_public", lambda: P.ec_public(d)),
        ("ec_sign P-256", lambda: P.ec_sign(d, h)),
        ("ec_verify P-256", lambda: P.ec_verify(q, h, sig)),
        ("sha256 1 KiB", sha256_1k),
        ("random_bytes 32", lambda: P.random_bytes(32)),
    ]

    name, pem = rsa_key_file()
    note = None
    if pem is None:
        note = "RSA rows skipped: no key (pass a PEM/DER path or put bench_rsa.pem here)"
    else:
        k = P.parse_private_key(pem)
        if k["type"] != "rsa":
            note = "RSA rows skipped: %s is not an RSA key" % name
        else:
            bits = len(k["n"]) * 8
            key = tuple(k[f] for f in ("n", "e", "d", "p", "q", "dp", "dq", "qinv"))
            info = bytes.fromhex("3031300d060960864801650304020105000420") + h
            s1 = P.rsa_sign_pkcs1(key, info)
            s2 = P.rsa_sign_pss(key, h, "sha256", 32)
            n, e = key[0], key[1]
            ops += [
                ("rsa_sign_pkcs1 %d" % bits, lambda: P.rsa_sign_pkcs1(key, info)),
                ("rsa_sign_pss %d" % bits, lambda: P.rsa_sign_pss(key, h, "sha256", 32)),
                ("rsa_verify_pkcs1 %d" % bits, lambda: P.rsa_verify_pkcs1(n, e, info, s1)),
                ("rsa_verify_pss %d" % bits, lambda: P.rsa_verify_pss(n, e, h, "sha256", 32, s2)),
                ("parse_private_key rsa", lambda: P.parse_private_key(pem)),
            ]

    print("platform: %s" % sys.platform)
    print("%-24s %6s %10s %10s %9s" % ("operation", "runs", "total ms", "ms/op", "ops/s"))
    for label, fn in ops:
        runs, us = measure(fn)
        per = us / runs
        print("%-24s %6d %10.1f %10.3f %9.1f" % (label, runs, us / 1000, per / 1000, 1e6 / per))
    if note:
        print(note)


main()
