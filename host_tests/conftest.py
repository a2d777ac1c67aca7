"""The host tests' fixtures: each concern lives in its own harness/<name>.py, loaded
here as a pytest plugin. Test files sit in folders by subject (token, cmodule, pure,
tls, mqtt, tool, boards, setup, ...) and import plain helpers from `harness.*`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = [
    "harness.unix",
    "harness.qemu",
    "harness.cmodule",
    "harness.token_files",
    "harness.pki",
    "harness.mosquitto",
    "harness.tls_servers",
    "harness.tls_device",
    "harness.p11board",
    "harness.esp32",
]
