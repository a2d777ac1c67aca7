metadata(description="MQTT 3.1.1 client with AWS IoT Core's limits: mqtt (protocol client), "
         "mqtt.robust (reconnect, backoff, resubscribe), mqtt.aws (limits, topic rules)",
         version="0.2.0")

# The transport is any stream or a callable returning one (p11tls.opener() for
# TLS through the token), so this package needs nothing else.
package("mqtt")
