"""pytest fixtures around p11lab (tools/p11lab, the launchers), and test-only fakes."""

import sys
from pathlib import Path

# The lab and the CLI from this checkout, whether or not they are pip-installed.
_TOOLS = str(Path(__file__).resolve().parents[2] / "tools")
if _TOOLS not in sys.path:
    sys.path.insert(0, _TOOLS)
