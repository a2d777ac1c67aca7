"""Fixtures for the host tests. Each concern lives in harness/<name>.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness.unix import unix_fw  # noqa: E402,F401
