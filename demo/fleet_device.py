# The device half of `make demo-fleet`: runs on the firmware (MicroPython).
#
#   micropython fleet_device.py boot        what a board's main.py does on every boot:
#                                           fleetprov.provision() (first boot: by claim;
#                                           later boots: "already", nothing sent)
#   micropython fleet_device.py telemetry   MQTT with the board's own identity and its
#                                           config (aws_clientcredential.json): publish
#                                           on things/<thing>/telemetry, receive it back
import sys
import time
import json

T0 = time.ticks_ms()


def say(text):
    print("  device %6d ms  %s" % (time.ticks_diff(time.ticks_ms(), T0), text))


def boot():
    import fleetprov
    try:
        r = fleetprov.provision(log=lambda step: say("step " + step))
    except fleetprov.Rejected as e:
        raise SystemExit("provisioning refused: %s (retry later: %s)" % (e, not e.final))
    if r["state"] == "already":
        say("already provisioned as %s: nothing sent" % r["thing"])
    else:
        say("provisioned as %s; first message on %s came back" % (r["thing"], r["topic"]))
        say("deviceConfiguration %s" % json.dumps(r["device_configuration"]))


def telemetry():
    import fleetprov
    import p11tls
    from mqtt import MQTTClient

    cfg = fleetprov.read_json(fleetprov.CONFIG_FILE)
    thing = cfg["thing_name"]
    c = MQTTClient(thing, p11tls.opener(cfg["endpoint"], cfg["port"],
                                        server_hostname=cfg.get("server_name")), keepalive=60)
    c.connect()
    say("connected as %s with the token's own key (TLS signed by C_Sign)" % thing)
    topic = "things/%s/telemetry" % thing
    c.subscribe(topic, qos=1)
    msg = json.dumps({"thing": thing, "uptime_ms": time.ticks_ms()})
    c.publish(topic, msg, qos=1)
    say("published %d bytes on %s (PUBACK received)" % (len(msg), topic))
    m = c.wait_msg(10)
    c.disconnect()
    if m is None or bytes(m[1]) != msg.encode():
        raise SystemExit("the telemetry message did not come back")
    say("received it back: %s" % bytes(m[1]).decode())


if sys.argv[1] == "boot":
    boot()
elif sys.argv[1] == "telemetry":
    telemetry()
else:
    raise SystemExit("usage: fleet_device.py boot | telemetry")
