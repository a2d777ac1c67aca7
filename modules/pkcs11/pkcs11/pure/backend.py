# The crypto backend contract (same functions as the C module _pkcs11),
# implemented in pure MicroPython. Slow and not side-channel resistant;
# see p256.py and rsa.py.
from . import p256, rsa, sha2
from .keys import parse_private_key, parse_public_key, parse_certificate

API_VERSION = 1
random_bytes = rsa.random_bytes


def ec_generate():
    while True:
        d = random_bytes(32)
        k = int.from_bytes(d, "big")
        if 0 < k < p256.N:
            return d, p256.public(d)


def ec_public(d):
    return p256.public(d)


def ec_sign(d, digest):
    return p256.sign(d, digest)


def ec_verify(q, digest, sig):
    return p256.verify(q, digest, sig)


def ec_check_point(q):
    try:
        p256.decode_point(q)
    except ValueError:
        return False
    return len(q) == 65


def _key(key):
    if len(key) != 8:
        raise ValueError("RSA key must be (n, e, d, p, q, dp, dq, qinv)")
    return key


def rsa_sign_pkcs1(key, data):
    return rsa.sign_pkcs1(_key(key), data)


def rsa_sign_pss(key, mhash, hash_name, salt_len):
    return rsa.sign_pss(_key(key), mhash, hash_name, salt_len)


def rsa_verify_pkcs1(n, e, data, sig):
    return rsa.verify_pkcs1(n, e, data, sig)


def rsa_verify_pss(n, e, mhash, hash_name, salt_len, sig):
    return rsa.verify_pss(n, e, mhash, hash_name, salt_len, sig)


def hash_new(name):
    return sha2.new(name)
