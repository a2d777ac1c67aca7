"""_pkcs11 hash_new (SHA-1/256/384/512) and random_bytes on the unix firmware."""

from __future__ import annotations

import hashlib
import os

import pytest

from harness.cmodule import is_error

NAMES = ["sha1", "sha256", "sha384", "sha512"]


@pytest.mark.parametrize("name", NAMES)
def test_hashes_match_hashlib(cmodule, name):
    # Lengths around the 64- and 128-byte block sizes, and 0.
    messages = [b"", b"abc"] + [os.urandom(n) for n in (55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000)]
    out = cmodule.run(f"""
        out = []
        for m in {[m.hex() for m in messages]!r}:
            h = P.hash_new({name!r})
            h.update(x(m))
            out.append(h.digest())
    """)
    assert out == [hashlib.new(name, m).digest() for m in messages]


@pytest.mark.parametrize("name", NAMES)
def test_incremental_updates_and_digest_does_not_finish(cmodule, name):
    data = os.urandom(300)
    out = cmodule.run(f"""
        d = x({data.hex()!r})
        h = P.hash_new({name!r})
        for i in range(0, 300, 7):
            h.update(d[i:i + 7])
        first = h.digest()
        again = h.digest()
        h.update(memoryview(b'more'))
        h.update(bytearray(b'!'))
        out = [first, again, h.digest()]
    """)
    assert out[0] == out[1] == hashlib.new(name, data).digest()
    assert out[2] == hashlib.new(name, data + b"more!").digest()


def test_unknown_hash_names_raise_value_error(cmodule):
    out = cmodule.run("""
        out = [call(P.hash_new, n) for n in ('md5', 'sha224', 'SHA256', '')]
        out.append(call(P.hash_new, 5))
    """)
    for result in out[:4]:
        assert is_error(result), result
    assert is_error(out[4], "TypeError")


def test_random_bytes_lengths_and_variety(cmodule):
    out = cmodule.run("""
        a = P.random_bytes(4096)
        out = [len(P.random_bytes(0)), len(P.random_bytes(1)), len(P.random_bytes(1025)),
               len(a), len(set(a)), a[:32] != P.random_bytes(32), call(P.random_bytes, -1)]
    """)
    assert out[:4] == [0, 1, 1025, 4096]
    # 4096 uniform bytes leave a given value unused with probability ~1e-7.
    assert out[4] == 256
    assert out[5] is True
    assert is_error(out[6])


def test_random_bytes_differ_between_processes(cmodule):
    # Seeded from the OS, not from a fixed seed.
    first = cmodule.run("out = P.random_bytes(32)")
    second = cmodule.run("out = P.random_bytes(32)")
    assert first != second
