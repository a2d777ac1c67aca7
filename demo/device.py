# The device half of `make demo`: runs on the firmware (MicroPython), one step per run.
#
#   micropython device.py keygen THING            key pair born in the token; prints a CSR
#   micropython device.py store CERT.der ROOT.der certificate and root CA into the token
#   micropython device.py mqtt HOST PORT THING [NAME]  MQTT over TLS through the token:
#                     subscribe, publish, receive our own message (NAME: the server
#                     certificate's name, default HOST)
#
# The token is the firmware's own (PKCS11_TOKEN_DIR on the unix firmware), used through
# its Pythonic layer (pkcs11.open_session): the seed's PKCS#11 calls, plus
# C_GenerateKeyPair; p11csr builds the request and p11tls signs the TLS handshake inside
# the token.
import sys
import time
import pkcs11
from pkcs11 import labels

KEY_ID = b"device-tls"

T0 = time.ticks_ms()


def say(text):
    # time since this device script started (cumulative), not the step's own time
    print("  device %6d ms since start  %s" % (time.ticks_diff(time.ticks_ms(), T0), text))


def destroy(s, label):
    for obj in s.find_objects(label=label):
        obj.destroy()


def keygen(thing):
    import p11csr
    with pkcs11.open_session(rw=True) as s:
        for label in (labels.LABEL_DEVICE_PRIVATE_KEY, labels.LABEL_DEVICE_PUBLIC_KEY):
            destroy(s, label)
        pub, key = s.generate_keypair(id=KEY_ID)
        say("EC P-256 key pair generated inside the token (C_GenerateKeyPair)")
        csr = p11csr.make_csr(s, key, "CN=" + thing, pub=pub)
        say("PKCS#10 CSR for CN=%s built and signed by the token (C_Sign)" % thing)
    print(p11csr.pem(csr), end="")


def store(cert_file, root_file):
    with pkcs11.open_session(rw=True) as s:
        for label, path in ((labels.LABEL_DEVICE_CERTIFICATE, cert_file),
                            (labels.LABEL_ROOT_CERTIFICATE, root_file)):
            with open(path, "rb") as f:
                der = f.read()
            destroy(s, label)
            s.import_certificate(der, label=label)
            say("stored %r (%d bytes) in the token (C_CreateObject)" % (label.decode(), len(der)))


def mqtt_demo(host, port, thing, server_name=None):
    import p11tls
    from mqtt import MQTTClient

    opener = p11tls.opener(host, port, server_hostname=server_name)
    links = []

    def open_link():
        links.append(opener())
        return links[-1]

    client = MQTTClient(thing, open_link, keepalive=60)
    client.connect()
    suite, version = links[-1].cipher()
    say("%s handshake (%s) signed in the token; MQTT CONNECT accepted by %s:%d"
        % (version, suite, host, port))
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
