"""Run a snippet on the unix firmware whose last output line is JSON."""

from __future__ import annotations

import json
import textwrap
from typing import Any

# The pure backend under test, and a helper that turns a ValueError into its text.
PURE_PRELUDE = """\
import json
from pkcs11.pure import backend as b
from pkcs11 import der as asn1
H = bytes.fromhex
def err(f, *a):
    try:
        f(*a)
    except ValueError as e:
        return 'ValueError: ' + str(e)
    return None
"""


def run_json(unix_fw, code: str, prelude: str = PURE_PRELUDE, **kw: Any) -> Any:
    out = unix_fw.run(prelude + textwrap.dedent(code), **kw)
    return json.loads(out.strip().splitlines()[-1])
