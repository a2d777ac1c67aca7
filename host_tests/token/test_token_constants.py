"""The CK* numbers: pkcs11/constants.py, the private `_CK*` copies every device
module declares with const() (pkcs11, p11tls, p11csr, mqtt, ...) and the host
tool's name tables agree with the standard header
(p11-kit's pkcs11.h, from Debian's libp11-kit-dev), and the error table names
every CKR code; the firmware's errors module agrees too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from harness.paths import ROOT

PKG = ROOT / "modules" / "pkcs11" / "pkcs11"
MODULES = ROOT / "modules"
DEVICE_FILES = sorted(str(p.relative_to(MODULES)) for p in MODULES.rglob("*.py") if p.name != "manifest.py")
HEADER = Path("/usr/include/p11-kit-1/p11-kit/pkcs11.h")


def _header_values() -> dict[str, int]:
    if not HEADER.exists():
        pytest.fail(f"{HEADER} is missing: run `make deps` (Debian package libp11-kit-dev)")
    text = HEADER.read_text()
    raw = {m.group(1): m.group(2) for m in re.finditer(r"#define\s+(CK[A-Z]?_\w+)\s+(.+)", text)}

    def value(name: str) -> int:
        v = re.sub(r"/\*.*?\*/", "", raw[name]).strip()
        v = v.replace("-1L", "-1").replace("(unsigned long)", "")
        v = re.sub(r"(0x[0-9a-fA-F]+|\d+)UL", r"\1", v)
        v = re.sub(r"\b(CK[A-Z]?_\w+)\b", lambda m: str(value(m.group(1))), v)
        return eval(v, {}) & 0xFFFFFFFF  # noqa: S307 - the system header's arithmetic
    out = {}
    for name in raw:
        try:
            out[name] = value(name)
        except (SyntaxError, NameError, KeyError, TypeError):
            pass
    return out


def _assignments(path: Path) -> dict[str, int]:
    """NAME = <int> and _NAME = const(<int>) at module level."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            v = node.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const":
                v = v.args[0]
            if isinstance(v, ast.Constant) and isinstance(v.value, int) and not isinstance(v.value, bool):
                out[node.targets[0].id] = v.value
    return out


def test_constants_module_matches_the_standard() -> None:
    header = _header_values()
    ours = _assignments(PKG / "constants.py")
    assert len(ours) > 250
    for name, v in ours.items():
        assert name in header, f"{name} is not a standard name"
        assert v == header[name], f"{name} = {v:#x}, the standard says {header[name]:#x}"
    # every CKR code of the standard is there
    missing = [n for n in header if n.startswith("CKR_") and n not in ours]
    assert not missing


def test_every_device_package_is_checked() -> None:
    assert {"pkcs11/pkcs11/api.py", "p11tls/p11tls.py", "p11csr/p11csr.py"} <= set(DEVICE_FILES)


@pytest.mark.parametrize("module", DEVICE_FILES)
def test_private_const_copies_match(module: str) -> None:
    header = _header_values()
    checked = 0
    for name, v in _assignments(MODULES / module).items():
        if name.startswith("_CK") and name[1:] in header:
            assert v == header[name[1:]], f"{module}: {name} = {v:#x}, the standard says {header[name[1:]]:#x}"
            checked += 1
        elif name.startswith("_CK"):
            pytest.fail(f"{module}: {name} is not a standard name")
    if module.startswith("pkcs11/pkcs11/") and Path(module).name in (
            "objects.py", "token.py", "api.py", "mechanisms.py", "pythonic.py"):
        assert checked > 10
    if module in ("p11tls/p11tls.py", "p11csr/p11csr.py"):
        assert checked > 0


# The host tool's tables name flags in its own words; these are the standard's names.
_TOOL_FLAG_NAMES = {"EC-Fp": "CKF_EC_F_P", "EC-named-curve": "CKF_EC_NAMEDCURVE",
                    "EC-uncompressed": "CKF_EC_UNCOMPRESS"}


def _standard_name(prefix: str, word: str) -> str:
    return _TOOL_FLAG_NAMES.get(word) or prefix + word.upper().replace("-", "_")


def test_host_tool_names_match_the_standard() -> None:
    import p11board.names as names
    header = _header_values()
    tables = [("CKM_", names.CKM, True), ("CKA_", names.CKA, True), ("CKO_", names.CKO, False),
              ("CKK_", names.CKK, False), ("CKF_", names.CKF_MECH, False), ("CKF_", names.CKF_TOKEN, False)]
    for prefix, table, full in tables:
        for value, word in table.items():
            name = word if full else _standard_name(prefix, word)
            assert name in header, f"p11board.names: {word!r} is not a standard name ({name})"
            assert header[name] == value, f"p11board.names: {name} = {value:#x}, the standard says {header[name]:#x}"
    for name in ("CKF_LOGIN_REQUIRED", "CKF_USER_PIN_INITIALIZED"):
        assert getattr(names, name) == header[name]


def test_error_table_names_every_code(unix_fw) -> None:
    header = _header_values()
    ckr = {n: v for n, v in header.items() if n.startswith("CKR_")}
    code = "from pkcs11 import errors\n" + "".join(
        f"print({n!r}, errors.name({v}), errors.code({n!r}), errors.error({v}).__class__.__name__)\n"
        for n, v in ckr.items())
    lines = unix_fw.run(code).split("\n")
    rows = [line.split() for line in lines if line.strip()]
    assert len(rows) == len(ckr)
    for full, short, num, cls in rows:
        if full == "CKR_VENDOR_DEFINED":
            continue
        assert "CKR_" + short == full and int(num) == ckr[full]
        assert cls == "".join(w.capitalize() for w in short.split("_"))
    out = unix_fw.run("""
from pkcs11 import errors
e = errors.error(0x11, "detail")
print(str(e), e.rv, isinstance(e, errors.PKCS11Error), isinstance(e, errors.AttributeSensitive))
""")
    assert out.strip() == "CKR_ATTRIBUTE_SENSITIVE (0x11): detail 17 True True"
