# The device half of `make demo`: runs on the firmware (MicroPython), one step per run.
#
#   micropython device.py keygen THING            key pair born in the token; prints a CSR
#   micropython device.py store CERT.der ROOT.der certificate and root CA into the token
#   micropython device.py mqtt HOST PORT THING [NAME]  MQTT over TLS through the token:
#                     subscribe, publish, receive our own message (NAME: the server
#                     certificate's name, default HOST)
#
# The token is the firmware's own (PKCS11_TOKEN_DIR on the unix firmware). Only the
# seed's PKCS#11 calls are used, plus C_GenerateKeyPair; p11csr builds the request and
# p11tls signs the TLS handshake inside the token.
import sys
import time
import pkcs11
from pkcs11.constants import *

KEY_LABEL = b"Device Priv TLS Key"
PUB_LABEL = b"Device Pub TLS Key"
CERT_LABEL = b"Device Cert"
ROOT_LABEL = b"Root Cert"
KEY_ID = b"device-tls"

T0 = time.ticks_ms()


def say(text):
    print("  device %6d ms  %s" % (time.ticks_diff(time.ticks_ms(), T0), text))


def open_session():
    p11 = pkcs11.C_GetFunctionList()
    p11.C_Initialize()
    slot = p11.C_GetSlotList(True)[0]
    return p11, p11.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)


def close_session(p11, h):
    p11.C_CloseSession(h)
    p11.C_Finalize()


def destroy(p11, h, label):
    p11.C_FindObjectsInit(h, [(CKA_LABEL, label)])
    found = p11.C_FindObjects(h, 8)
    p11.C_FindObjectsFinal(h)
    for obj in found:
        p11.C_DestroyObject(h, obj)


def keygen(thing):
    import p11csr
    p11, h = open_session()
    for label in (KEY_LABEL, PUB_LABEL):
        destroy(p11, h, label)
    pub, key = p11.C_GenerateKeyPair(
        h, CKM_EC_KEY_PAIR_GEN,
        [(CKA_TOKEN, True), (CKA_LABEL, PUB_LABEL), (CKA_ID, KEY_ID), (CKA_VERIFY, True),
         (CKA_EC_PARAMS, b"\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07")],
        [(CKA_TOKEN, True), (CKA_LABEL, KEY_LABEL), (CKA_ID, KEY_ID), (CKA_SIGN, True)])
    say("EC P-256 key pair generated inside the token (C_GenerateKeyPair)")
    csr = p11csr.make_csr(h, key, "CN=" + thing, pub=pub)
    say("PKCS#10 CSR for CN=%s built and signed by the token (C_Sign)" % thing)
    close_session(p11, h)
    print(p11csr.pem(csr), end="")


def store(cert_file, root_file):
    p11, h = open_session()
    for label, path in ((CERT_LABEL, cert_file), (ROOT_LABEL, root_file)):
        with open(path, "rb") as f:
            der = f.read()
        destroy(p11, h, label)
        p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                               (CKA_TOKEN, True), (CKA_LABEL, label), (CKA_VALUE, der)])
        say("stored %r (%d bytes) in the token (C_CreateObject)" % (label.decode(), len(der)))
    close_session(p11, h)


def mqtt_demo(host, port, thing, server_name=None):
    import p11tls
    from mqtt import MQTTClient

    client = MQTTClient(thing, p11tls.opener(host, port, server_hostname=server_name),
                        keepalive=60)
    client.connect()
    say("TLS 1.2 handshake signed in the token; MQTT CONNECT accepted by %s:%d" % (host, port))
    topic = "demo/%s/echo" % thing
    client.subscribe(topic, qos=1)
    say("subscribed to %s" % topic)
    message = b"hello from the token of " + thing.encode()
    client.publish(topic, message, qos=1)
    say("published %d bytes with QoS 1 (PUBACK received)" % len(message))
    got = client.wait_msg(10)
    client.disconnect()
    if got is None:
        raise SystemExit("our own message did not come back within 10 s")
    say("received on %s: %r" % (bytes(got[0]).decode(), bytes(got[1])))
    if bytes(got[1]) != message:
        raise SystemExit("received a different message")
    say("disconnected")


def main(argv):
    if len(argv) >= 3 and argv[1] == "keygen":
        keygen(argv[2])
    elif len(argv) >= 4 and argv[1] == "store":
        store(argv[2], argv[3])
    elif len(argv) >= 5 and argv[1] == "mqtt":
        mqtt_demo(argv[2], int(argv[3]), argv[4], argv[5] if len(argv) > 5 else None)
    else:
        raise SystemExit("usage: device.py keygen THING | store CERT.der ROOT.der | mqtt HOST PORT THING [NAME]")


main(sys.argv)
