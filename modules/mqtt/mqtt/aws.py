# AWS IoT Core's per-connection limits and topic rules: the default `limits`
# of mqtt.MQTTClient. Data and rules only; the client enforces them before a
# byte is sent (MQTTLimitError).
#
# A missing or None entry means "protocol limit only"; MQTTClient(limits=None)
# drops them all for other brokers, dict(AWS_LIMITS, keepalive=(1, 1200))
# relaxes one. keepalive 0 ("never ping") is refused: AWS would apply its own
# 1200 s.
AWS_LIMITS = {
    "client_id": 128,  # bytes, UTF-8
    "topic": 256,  # bytes, names and filters
    "slashes": 7,  # '/' per name or filter
    "payload": 131072,  # bytes per PUBLISH (128 KB)
    "keepalive": (30, 1200),  # seconds, inclusive
    "topics_per_subscribe": 8,
    "connect_interval": 1000,  # ms between CONNECTs of one client id
}


def counted(topic):
    # The part of a topic name or filter (bytes) that AWS counts for the
    # "topic" and "slashes" limits: all of it, $aws/ reserved topics included
    # (AWS sized those to fit), except Basic Ingest topics, whose
    # "$aws/rules/<rule>/" prefix AWS excludes from both.
    if topic[:1] == b"$" and topic[:11].lower() == b"$aws/rules/":
        k = topic.find(b"/", 11)
        return b"" if k < 0 else topic[k + 1:]
    return topic
