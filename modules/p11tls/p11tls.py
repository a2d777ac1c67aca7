# p11tls: TLS client connections whose private key never leaves the pkcs11 token.
#
#   import p11tls
#   s = p11tls.connect("broker.example", 8883)   # key, certificate, root CA from the token
#   s.write(b"..."); s.readinto(buf); s.close()
#
# The counterpart of the FreeRTOS TLS helper. Through the token's Pythonic
# layer (pkcs11.open_session, Session.get_object) it makes the seed's calls in
# the seed's order: C_Initialize, C_GetSlotList, C_OpenSession, then for the
# key and for the certificate C_FindObjectsInit/C_FindObjects/
# C_FindObjectsFinal and C_GetAttributeValue; it verifies the server
# (CERT_REQUIRED, host name checked, SNI sent), signs the handshake with
# C_SignInit/C_Sign (CKM_ECDSA for EC P-256, CKM_RSA_PKCS for RSA), then
# C_CloseSession and C_Finalize. (The seed's C_GenerateRandom feeds its TLS
# stack's RNG; this firmware's TLS has its own.)
#
# How the signature reaches the token: the SSLContext is given a *reference
# key* that names a signer registered with the C hook (_p11tls, see
# firmware/cmodule/pkcs11/tls_sign_hook.c); mbedTLS's CertificateVerify
# signature is routed to that signer. Renegotiation is off in this firmware,
# so the signer is only needed during the handshake and is unregistered as
# soon as it ends: the socket returned is MicroPython's own TLS socket.
#
# Errors: a TLS failure raises TLSError (an OSError) whose message starts with
# the mbedTLS error name (or the errno name: EPIPE, ETIMEDOUT...) and gives a
# hint; .code is the mbedTLS code (or the errno), .alert the description of the
# fatal alert the server sent, named in the message ("alert unknown_ca (48)").
# TCP connect errors keep their errno with its name in the text. A failed
# signature inside the token re-raises the token's PKCS11Error.
#
# Certificate chain: a device certificate issued by an intermediate CA is sent
# with its intermediates. They are token certificates labelled
# chain_label(cert_label, 1), (.., 2)...: "Device Cert CA 1" issued "Device
# Cert", "Device Cert CA 2" issued "Device Cert CA 1"; the first label missing
# ends the chain (at most MAX_CHAIN). Several certificates need the firmware's
# load_cert_chain to take a list (firmware/patches/tls-own-chain.patch).
#
# Deadline: connect() gives TCP connect + handshake `deadline` seconds in all
# (default 30), whatever the server's pace; `timeout` bounds each read.

from micropython import const
import tls
import _p11tls
import pkcs11
from pkcs11 import der, labels
from pkcs11.objects import P256_PARAMS

KEY_LABEL = labels.LABEL_DEVICE_PRIVATE_KEY
CERT_LABEL = labels.LABEL_DEVICE_CERTIFICATE
CA_LABEL = labels.LABEL_ROOT_CERTIFICATE
# intermediates read after the device certificate, at most
MAX_CHAIN = const(4)

_CKA_MODULUS = const(0x120)
_CKA_PUBLIC_EXPONENT = const(0x122)
_CKO_CERTIFICATE = const(1)
_CKA_TRUSTED = const(0x86)
_CKA_VALUE = const(0x11)
_CKO_PRIVATE_KEY = const(3)
_CKK_RSA = const(0)
_CKK_EC = const(3)
_CKM_RSA_PKCS = const(0x1)
_CKM_ECDSA = const(0x1041)
_CKM_RSA_PKCS_PSS = const(0xD)
# (hash length, CKM_SHA*, CKG_MGF1_SHA*) for TLS 1.3's RSA-PSS signatures
_PSS = ((32, 0x250, 2), (48, 0x260, 3), (64, 0x270, 4))

_X509_VERIFY = const(-0x2700)
# Hints for mbedTLS codes (the names come with MicroPython's OSError).
# A tuple of constants stays in the firmware image.
_HINTS = (
    (-0x7780, "the server refused the handshake: does the token key match the certificate, "
              "and does the server trust its issuer?"),
    (-0x7280, "the server closed the connection during the handshake (client certificate refused?)"),
    (-0x7880, "the server closed the connection"),
    (-0x6E00, "no common cipher suite or signature algorithm with the server"),
    (-0x6E80, "the server does not speak TLS 1.2"),
    (-0x7A00, "the server's certificate could not be parsed"),
    (-0x7700, "is this a TLS port?"),
    (-0x7200, "is this a TLS port?"),
    (-0x6800, "the server did not answer in time"),
    (-0x7F00, "out of memory for TLS buffers"),
    (-0x3D00, "the token key reference is no longer registered (connection closed?)"),
    (-0x4C80, "the token could not sign the handshake"),
    (-0x4300, "the token could not sign the handshake"),
)


# Fatal alerts (RFC 5246 7.2, RFC 8446 6) as the server's reasons, for a client
# that authenticates with the token's key and certificate.
_ALERTS = (
    (10, "unexpected_message", "the server did not expect this message (a TLS bug or not a TLS server)"),
    (20, "bad_record_mac", "a record was corrupted on the way"),
    (40, "handshake_failure", "no cipher suite or signature algorithm in common, or the server "
                              "wanted a client certificate it could not accept"),
    (42, "bad_certificate", "the server refused the device certificate (registered and active?)"),
    (43, "unsupported_certificate", "the server does not accept this kind of device certificate"),
    (44, "certificate_revoked", "the device certificate is revoked"),
    (45, "certificate_expired", "the device certificate is expired or not yet valid"),
    (46, "certificate_unknown", "the server refused the device certificate"),
    (47, "illegal_parameter", "the server found a handshake field out of range"),
    (48, "unknown_ca", "the server does not trust the issuer of the device certificate "
                       "(register the CA that signed it)"),
    (49, "access_denied", "the server denies access to this device"),
    (50, "decode_error", "the server could not decode a handshake message"),
    (51, "decrypt_error", "the handshake signature did not verify: does the token key match "
                          "the device certificate?"),
    (70, "protocol_version", "the server requires TLS 1.3 (or another version) and the client "
                             "offered TLS 1.2 only (ciphers= lists TLS 1.2 suites only, or the "
                             "firmware has no TLS 1.3)"),
    (71, "insufficient_security", "the server wants stronger cipher suites"),
    (80, "internal_error", "the server failed (see its log)"),
    (112, "unrecognized_name", "the server does not serve this host name (SNI)"),
    (116, "certificate_required", "the server requires a client certificate"),
    (120, "no_application_protocol", "the server accepts none of the ALPN protocols offered"),
)

# errno hints for a handshake cut short.
_ERRNO_HINTS = (
    (32, "the server closed the connection during the handshake (client certificate refused?)"),
    (104, "the server reset the connection during the handshake (client certificate refused?)"),
    (110, "the server did not answer in time"),
    (11, "the server did not answer in time"),
)


def errno_name(n):
    """'ECONNREFUSED' for 111 (the firmware's errno table), else 'errno 111'."""
    try:
        from errno import errorcode
        return errorcode[n]
    except (ImportError, KeyError):
        return "errno %d" % n


class TLSError(OSError):
    """A TLS failure: str() is 'MBEDTLS_ERR_NAME: hint [mbedTLS text]'."""

    def __init__(self, code, name, hint, detail=None):
        msg = name + ": " + (hint or "TLS failure")
        if detail:
            msg += " [" + detail + "]"
        super().__init__(msg)
        self.code = code
        self.name = name


class TokenError(ValueError):
    """The token does not hold what the connection needs (key, certificate, CA)."""


def _text(label):
    # a label for messages: 'Device Cert', never b'Device Cert'
    return label.decode() if isinstance(label, bytes) else label


def _find(s, cls, label, what):
    # The seed's search: one object of a class with a label.
    try:
        return s.get_object(object_class=cls, label=label)
    except pkcs11.NoSuchKey:
        raise TokenError("no %s labelled %r in the token%s" % (
            what, _text(label), " (with a user PIN set, private keys stay hidden until C_Login: "
            "pass pin= or a logged-in session)" if cls == _CKO_PRIVATE_KEY else ""))
    except pkcs11.MultipleObjectsReturned:
        raise TokenError("several objects labelled %r in the token" % (_text(label),))


def chain_label(cert_label, i):
    """The label of the i-th CA certificate above the device certificate
    (1: the one that issued it): cert_label + " CA <i>"."""
    if isinstance(cert_label, str):
        cert_label = cert_label.encode()
    return cert_label + (" CA %d" % i).encode()


def _chain(s, cert_label, cert):
    # [device certificate, intermediates...] when the token holds intermediates.
    ders = [cert]
    for i in range(1, MAX_CHAIN + 1):
        # find_objects, not get_object: an absent intermediate is the usual case
        # and needs no "log in?" hint (which would add calls to the seed's order)
        found = s.find_objects(object_class=_CKO_CERTIFICATE, label=chain_label(cert_label, i))
        if not found:
            break
        if len(found) > 1:
            raise TokenError("several objects labelled %r in the token"
                             % (_text(chain_label(cert_label, i)),))
        ders.append(found[0].der)
    return ders[0] if len(ders) == 1 else ders


def reference_key(ticket, n=None, e=None):
    """DER of the key that stands for the token key in an SSLContext:
    EC P-256 (SEC1) when n is None, else RSA (PKCS#1) with modulus n and
    exponent e. It holds no secret: its private value is MAGIC || ticket."""
    d = _p11tls.MAGIC + ticket
    if n is None:
        return der.seq(der.integer(1), der.octet_string(d + bytes(32 - len(d))),
                       der.explicit(0, P256_PARAMS))
    one = der.integer(1)
    three = der.integer(3)
    return der.seq(der.integer(0), der.integer(n), der.integer(e), der.integer(d),
                   three, three, one, one, one)


def _ciphers(ctx, ciphers):
    if isinstance(ciphers, str):
        ciphers = ciphers.replace(",", ":").split(":")
    try:
        ctx.set_ciphers(ciphers)
    except OSError:
        known = ctx.get_ciphers()
        for c in ciphers:
            if c not in known:
                raise TLSError(-0x5E80, "MBEDTLS_ERR_SSL_BAD_CONFIG",
                               "unknown cipher suite %r: use mbedTLS names such as "
                               "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256" % (c,))
        raise


def _verify_hint(detail, hostname, ca_from):
    if "CN" in detail or "name" in detail:
        return "the server certificate is not issued for %r" % (hostname,)
    if "expired" in detail or "future" in detail:
        return "the server certificate is outside its validity period (is the clock set?)"
    return "the server certificate is not signed by the root CA %s" % (ca_from,)


def _handshake(ctx, sock, server_hostname, deadline):
    # The handshake, bounded by `deadline` seconds in all: the socket is made
    # non-blocking and the firmware's SSLSocket.do_handshake() is driven until
    # it is done (per-read timeouts alone let a peer that drips bytes hold the
    # handshake forever). The socket is blocking again afterwards.
    if deadline is None:
        return ctx.wrap_socket(sock, server_hostname=server_hostname)
    import time
    import select
    end = time.ticks_add(time.ticks_ms(), int(deadline * 1000))
    sock.setblocking(False)
    ss = ctx.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
    p = select.poll()
    p.register(sock, select.POLLIN)
    while not ss.do_handshake():
        left = time.ticks_diff(end, time.ticks_ms())
        if left <= 0:
            raise TLSError(110, "ETIMEDOUT", "the TLS handshake did not finish within %.3g s "
                           "(deadline): the server is too slow or stalled" % deadline)
        # POLLIN wakes us for the server's bytes; a full send buffer
        # (do_handshake wants to write) is retried every 50 ms.
        p.poll(min(left, 50))
    sock.setblocking(True)
    return ss


def tls_error(exc, alpn=None):
    """The TLSError for an OSError from the firmware's tls module (an mbedTLS
    code, with the alert the server sent if any, or an errno), else None. The
    handshake raises it; use it for errors from reads and writes after the
    handshake too (in TLS 1.3 a server refuses a client certificate there)."""
    a = exc.args
    if isinstance(exc, TLSError) or not (a and isinstance(a[0], int)):
        return None
    code = a[0]
    if -256 < code < 0:
        code = -code        # the socket's errno, passed on through mbedTLS
    if code > 0:
        hint = "the connection failed during the handshake"
        for c, hi in _ERRNO_HINTS:
            if c == code:
                hint = hi
        return TLSError(code, errno_name(code), hint)
    if code < -255:
        name = a[1] if len(a) > 1 and str(a[1]).startswith("MBEDTLS_ERR_") else None
        hint = None
        for c, hi in _HINTS:
            if c == code:
                hint = hi
        alert = a[2] if len(a) > 2 else None
        if alert is not None:
            hint = "the server sent alert %d" % alert
            for c, n, hi in _ALERTS:
                if c == alert:
                    hint = "the server sent alert %s (%d): %s" % (n, c, hi)
        if alpn and code == -0x7780 and alert in (None, 120):
            hint += " Or does it accept none of the ALPN protocols offered (%s)?" % ", ".join(alpn)
        e = TLSError(code, name or "MBEDTLS_ERR -0x%04X" % -code, hint,
                     None if name else (a[1] if len(a) > 1 else None))
        e.alert = alert
        return e
    return None


def wrap_socket(sock, server_hostname, session=None, key_label=KEY_LABEL,
                cert_label=CERT_LABEL, ca=None, ca_label=CA_LABEL, ciphers=None,
                alpn=None, pin=None, deadline=None):
    """TLS over a connected socket, authenticated by the token's key and certificate.

    session: a pkcs11 session handle or pkcs11.Session; None opens (and
    afterwards closes) one on the first slot, logging in with pin if given.
    ca: the server's root CA(s), DER or PEM (a PEM bundle may hold several);
    None reads the certificate labelled ca_label from the token.
    ciphers: mbedTLS suite names (a list, or one string separated by ':' or ',').
    alpn: protocol names (e.g. ["x-amzn-mqtt-ca"]); refused if the firmware's
    tls module has no ALPN. deadline: seconds for the whole handshake (None:
    only the socket's own timeout); the socket is left blocking.
    Returns the TLS socket with the handshake done.
    The socket is closed if anything fails."""
    own = None
    ticket = None
    try:
        if session is None:
            session = own = pkcs11.open_session(rw=False, user_pin=pin)
        elif isinstance(session, int):
            session = pkcs11.Session(handle=session)
        # The seed's order: find the key, read its type; find the certificate, read it.
        key = _find(session, _CKO_PRIVATE_KEY, key_label, "private key")
        ktype = key.key_type
        cert = _find(session, _CKO_CERTIFICATE, cert_label, "certificate").der
        if ca is None:
            root = _find(session, _CKO_CERTIFICATE, ca_label, "root CA certificate")
            # only a trust anchor the SO put there (issue 10, finding 8)
            # (one read for both: the seed's call sequence stays as it was)
            trusted, ca = root.get(_CKA_TRUSTED, _CKA_VALUE)
            if not trusted:
                raise TokenError("the root CA certificate %r in the token is not trusted (CKA_TRUSTED): "
                                 "store it with p11board import-ca (as the SO when the token has an "
                                 "SO PIN)" % (_text(ca_label),))
            ca_from = "in the token (%r)" % (_text(ca_label),)
        else:
            ca_from = "given to p11tls"
        # Not in the seed's sequence: the intermediate CAs, if the token holds any.
        cert = _chain(session, cert_label, cert)
        if ktype == _CKK_EC:
            mech = _CKM_ECDSA
            n = e = None
        elif ktype == _CKK_RSA:
            mech = _CKM_RSA_PKCS
            n, e = key.get(_CKA_MODULUS, _CKA_PUBLIC_EXPONENT)
        else:
            raise TokenError("key %r is neither EC nor RSA" % (_text(key_label),))

        def sign(data, pss_hash_len=None):
            # TLS 1.3 signs RSA with PSS (the hook passes the hash length): salt = hash length.
            if pss_hash_len is not None:
                for n, hash_mech, mgf in _PSS:
                    if n == pss_hash_len:
                        return key.sign(data, (_CKM_RSA_PKCS_PSS, (hash_mech, mgf, n)))
                raise ValueError("no PSS hash of %d bytes" % pss_hash_len)
            return key.sign(data, mech)

        ticket = _p11tls.register(sign)
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = tls.CERT_REQUIRED
        try:
            # This firmware's mbedTLS reads DER only; a PEM bundle may hold several CAs.
            if der.is_pem(ca):
                ders = [d for label, d in der.pem_blocks(ca) if label == "CERTIFICATE"]
                if not ders:
                    raise ValueError
                for d in ders:
                    ctx.load_verify_locations(d)
            else:
                ctx.load_verify_locations(ca)
        except ValueError:
            raise TokenError("the root CA %s is not a valid X.509 certificate" % (ca_from,))
        try:
            ctx.load_cert_chain(cert, reference_key(ticket, n, e))
        except TypeError:
            raise TokenError("the token holds intermediate CA certificates (%r...) but this "
                             "firmware's tls module loads one certificate" % (
                                 _text(chain_label(cert_label, 1)),))
        except ValueError:
            raise TokenError("the certificate %r in the token is not a valid X.509 certificate"
                             % (_text(cert_label),))
        if ciphers:
            _ciphers(ctx, ciphers)
        if alpn:
            if not hasattr(ctx, "set_alpn_protocols"):
                raise NotImplementedError("ALPN is not available in this firmware's tls module "
                                          "(for AWS IoT use port 8883, which needs no ALPN)")
            ctx.set_alpn_protocols(alpn)
        try:
            return _handshake(ctx, sock, server_hostname, deadline)
        except TLSError:
            raise
        except Exception as exc:
            err = _p11tls.last_error(ticket)
            if err is not None:
                raise err
            if isinstance(exc, ValueError):
                # modtls reports a failed server verification as a ValueError
                # carrying mbedTLS's verification report.
                detail = str(exc).strip().replace("\n", "; ")
                raise TLSError(_X509_VERIFY, "MBEDTLS_ERR_X509_CERT_VERIFY_FAILED",
                               _verify_hint(detail, server_hostname, ca_from), detail)
            if isinstance(exc, OSError):
                e = tls_error(exc, alpn)
                if e is not None:
                    raise e
            raise
    except BaseException:
        try:
            sock.close()
        except OSError:
            pass
        raise
    finally:
        if ticket is not None:
            _p11tls.unregister(ticket)
        if own is not None:
            own.close()


def connect(host, port=8883, server_hostname=None, timeout=10, deadline=30, **kw):
    """A TCP connection to host:port, then wrap_socket() (same keywords).
    The server certificate is checked against server_hostname (default: host).
    timeout: seconds for each socket operation (then and later); deadline:
    seconds for TCP connect + handshake in all (None: no overall limit)."""
    import socket
    import time

    t0 = time.ticks_ms()
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    try:
        t = timeout
        if deadline is not None and (t is None or t > deadline):
            t = deadline
        if t is not None:
            s.settimeout(t)
        try:
            # The handshake's and MQTT's small writes must not wait for Nagle's
            # timer (make bench: 52 ms -> 17 ms per handshake). IPPROTO_TCP and
            # TCP_NODELAY are 6 and 1 on Linux and in lwIP.
            s.setsockopt(6, 1, 1)
        except OSError:
            pass
        try:
            s.connect(ai[-1])
        except OSError as e:
            n = e.args[0] if e.args else 0
            if not isinstance(n, int) or n <= 0:
                raise
            raise OSError(n, "%s: cannot connect to %s:%d" % (errno_name(n), host, port))
    except BaseException:
        s.close()
        raise
    if deadline is not None:
        deadline -= time.ticks_diff(time.ticks_ms(), t0) / 1000
        if deadline <= 0:
            deadline = 0.001
    ss = wrap_socket(s, server_hostname or host, deadline=deadline, **kw)
    if timeout is not None:
        s.settimeout(timeout)
    return ss


def opener(host, port=8883, **kw):
    """A callable that opens a new connection each time (for MQTTClient's reconnect)."""
    return lambda: connect(host, port, **kw)
