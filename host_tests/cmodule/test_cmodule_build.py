"""The C user modules as build units, checked with the host compiler:

- `_pkcs11` (firmware/cmodule/pkcs11) builds without the TLS sign hook; `_p11tls`
  (firmware/cmodule/p11tls) carries the hook, its own build files and its own
  `--wrap` link flag, and draws its tickets from `_pkcs11`'s DRBG (one RNG path);
- both compile against mbedTLS 3.5.2, the version ESP-IDF v5.2 ships (issue 14: parse.c
  used two functions that appeared in mbedTLS 3.6 and the ESP32 build failed), and the
  mbedTLS functions they call are all ones mbedTLS 3.5.2 has.

The sources are compiled with the unix port's configuration (its genhdr from
`make unix`). The mbedTLS 3.5.2 headers come from, in this order: `MBEDTLS_3_5_DIR`
(an mbedTLS source tree), `$BUILD/mbedtls-3.5.2`, a git copy of Mbed-TLS/mbedtls at
`$MIRROR/Mbed-TLS+mbedtls/repo` (unpacked into `$BUILD/mbedtls-3.5.2`), or the ESP-IDF
v5.2.2 tree that ../shared/tools/esp32c3/build.sh leaves in `~/.cache/esp32c3`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.paths import BUILD, ROOT

CMODULE = ROOT / "firmware" / "cmodule"
PKCS11_DIR = CMODULE / "pkcs11"
P11TLS_DIR = CMODULE / "p11tls"
MPY = BUILD / "micropython"
MBEDTLS_36 = MPY / "lib" / "mbedtls"
MBEDTLS_35_COMMIT = "daca7a3979c22da155ec9dce49ab1abf3b65d3a9"  # v3.5.2, as build.sh pins it

# Every mbedTLS function the C modules call, each checked to exist in mbedTLS 3.5.2
# (ESP-IDF v5.2) and 3.6 (v5.3, v5.4, and the unix/qemu builds). A call to a function
# not listed here fails test_mbedtls_calls_are_known_to_exist_in_3_5: check that 3.5.2
# declares it (test_c_modules_compile_against_mbedtls_3_5_2 does when the headers are
# here) or keep it behind `#if MBEDTLS_VERSION_NUMBER >= 0x03060000`, then add it.
MBEDTLS_35_CALLS = frozenset("""
    mbedtls_asn1_get_alg mbedtls_asn1_get_int mbedtls_asn1_get_tag
    mbedtls_ctr_drbg_free mbedtls_ctr_drbg_init mbedtls_ctr_drbg_random mbedtls_ctr_drbg_reseed
    mbedtls_ctr_drbg_seed
    mbedtls_ecp_point_write_binary mbedtls_ecp_write_key
    mbedtls_entropy_free mbedtls_entropy_func mbedtls_entropy_init
    mbedtls_gcm_auth_decrypt mbedtls_gcm_crypt_and_tag mbedtls_gcm_free mbedtls_gcm_init mbedtls_gcm_setkey
    mbedtls_md_get_size mbedtls_md_info_from_type
    mbedtls_mpi_free mbedtls_mpi_init mbedtls_mpi_size mbedtls_mpi_write_binary
    mbedtls_pk_ec mbedtls_pk_free mbedtls_pk_get_bitlen mbedtls_pk_get_type mbedtls_pk_init
    mbedtls_pk_parse_key mbedtls_pk_parse_public_key mbedtls_pk_rsa mbedtls_pk_sign_restartable
    mbedtls_platform_zeroize
    mbedtls_rsa_complete mbedtls_rsa_export mbedtls_rsa_export_crt mbedtls_rsa_export_raw
    mbedtls_rsa_free mbedtls_rsa_import_raw mbedtls_rsa_init mbedtls_rsa_private mbedtls_rsa_public
    mbedtls_rsa_rsassa_pkcs1_v15_sign mbedtls_rsa_rsassa_pkcs1_v15_verify
    mbedtls_sha1_clone mbedtls_sha1_finish mbedtls_sha1_free mbedtls_sha1_init mbedtls_sha1_starts
    mbedtls_sha1_update
    mbedtls_sha256_clone mbedtls_sha256_finish mbedtls_sha256_free mbedtls_sha256_init
    mbedtls_sha256_starts mbedtls_sha256_update
    mbedtls_sha512_clone mbedtls_sha512_finish mbedtls_sha512_free mbedtls_sha512_init
    mbedtls_sha512_starts mbedtls_sha512_update
    mbedtls_x509_crt_free mbedtls_x509_crt_init mbedtls_x509_crt_parse_der_nocopy
""".split())


def _sources(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.c"))


def _strip_comments(c: str) -> str:
    c = re.sub(r"/\*.*?\*/", " ", c, flags=re.S)
    return re.sub(r"//[^\n]*", " ", c)


def _without_36_only_blocks(c: str) -> str:
    """The text outside `#if MBEDTLS_VERSION_NUMBER >= 0x0306....` branches (whose
    #else, if any, is kept): what a 3.5 build compiles."""
    out, stack = [], []      # stack of "skip this branch?" per #if level
    for line in c.splitlines():
        s = line.strip()
        if s.startswith("#if"):
            m = re.match(r"#if\s+MBEDTLS_VERSION_NUMBER\s*>=\s*0x0(\w+)", s)
            stack.append(bool(m) and int(m.group(1), 16) >= 0x3060000)
            continue
        if s.startswith("#else") or s.startswith("#elif"):
            if stack:
                stack[-1] = False if stack[-1] else stack[-1]
            continue
        if s.startswith("#endif"):
            if stack:
                stack.pop()
            continue
        if not any(stack):
            out.append(line)
    return "\n".join(out)


def _mbedtls_calls(folder: Path) -> set[str]:
    calls: set[str] = set()
    for f in _sources(folder):
        text = _without_36_only_blocks(_strip_comments(f.read_text()))
        calls |= set(re.findall(r"\b(mbedtls_\w+)\s*\(", text))
    return calls


# -- the two modules and their build files ----------------------------------------------

def test_tls_hook_is_its_own_module_with_its_own_link_flags():
    assert not (PKCS11_DIR / "tls_sign_hook.c").exists()
    assert (P11TLS_DIR / "tls_sign_hook.c").exists()
    wrap = "-Wl,--wrap=mbedtls_pk_sign_restartable"
    for build_file in ("micropython.mk", "micropython.cmake"):
        pk = (PKCS11_DIR / build_file).read_text()
        tls = (P11TLS_DIR / build_file).read_text()
        assert "--wrap" not in _strip_hash_comments(pk) and "tls_sign_hook" not in _strip_hash_comments(pk)
        assert wrap in tls and "tls_sign_hook.c" in tls
    cmake = (P11TLS_DIR / "micropython.cmake").read_text()
    assert "-Wl,--undefined=__wrap_mbedtls_pk_sign_restartable" in cmake
    assert "target_link_options(usermod_p11tls" in cmake and "usermod_pkcs11" not in cmake.split("add_library")[1]
    # the esp32 entry point includes both, the crypto core first
    top = [line.strip() for line in (CMODULE / "micropython.cmake").read_text().splitlines()
           if line.strip().startswith("include(")]
    assert top == ["include(${CMAKE_CURRENT_LIST_DIR}/pkcs11/micropython.cmake)",
                   "include(${CMAKE_CURRENT_LIST_DIR}/p11tls/micropython.cmake)"]


def _strip_hash_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_the_hook_wraps_the_sign_functions_and_comments_say_which():
    """The hook wraps mbedtls_pk_sign_restartable (TLS 1.2) and mbedtls_pk_sign_ext (TLS 1.3);
    rsa.c once said mbedtls_rsa_pkcs1_sign."""
    wrapped = set()
    for f in [*CMODULE.rglob("micropython.mk"), *CMODULE.rglob("micropython.cmake")]:
        wrapped |= set(re.findall(r"--wrap=(\w+)", f.read_text()))
    for f in _sources(PKCS11_DIR) + _sources(P11TLS_DIR):
        wrapped |= set(re.findall(r"__wrap_(\w+)", f.read_text()))
        assert "mbedtls_rsa_pkcs1_sign" not in f.read_text(), f.name
    assert wrapped == {"mbedtls_pk_sign_restartable", "mbedtls_pk_sign_ext"}
    assert "mbedtls_pk_sign_restartable" in (PKCS11_DIR / "rsa.c").read_text()


def test_tickets_come_from_the_pkcs11_drbg():
    hook = _strip_comments((P11TLS_DIR / "tls_sign_hook.c").read_text())
    assert "pkcs11_rng(" in hook
    assert "mbedtls_entropy" not in hook and "mbedtls_ctr_drbg" not in hook


# -- the mbedTLS API -----------------------------------------------------------------------

def test_mbedtls_calls_are_known_to_exist_in_3_5():
    calls = _mbedtls_calls(PKCS11_DIR) | _mbedtls_calls(P11TLS_DIR)
    assert calls, "no mbedTLS call found: the scan is broken"
    unknown = sorted(calls - MBEDTLS_35_CALLS)
    assert not unknown, (f"mbedTLS functions not known to exist in mbedTLS 3.5.2 (ESP-IDF v5.2): {unknown}; "
                         "see MBEDTLS_35_CALLS")


def test_the_api_scan_sees_36_only_calls():
    """Negative control: the two 3.6 functions of issue 14 would have been caught."""
    fake = "x = mbedtls_ecp_keypair_get_group_id(kp);\n#if MBEDTLS_VERSION_NUMBER >= 0x03060000\n" \
           "a = mbedtls_ecp_write_key_ext(k);\n#else\nb = mbedtls_ecp_write_key(k);\n#endif\n"
    kept = _without_36_only_blocks(fake)
    assert "mbedtls_ecp_keypair_get_group_id" in kept and "mbedtls_ecp_write_key(" in kept
    assert "mbedtls_ecp_write_key_ext" not in kept
    assert "mbedtls_ecp_keypair_get_group_id" not in MBEDTLS_35_CALLS
    assert "mbedtls_ecp_write_public_key" not in MBEDTLS_35_CALLS


# -- compiling ----------------------------------------------------------------------------------

def _need_unix_build() -> None:
    if not (BUILD / "unix" / "genhdr" / "qstrdefs.generated.h").exists():
        pytest.fail(f"{BUILD}/unix/genhdr is missing: run `make unix` first")


def _compile(src: Path, out: Path, mbedtls_include: Path, syntax_only: bool = False) -> subprocess.CompletedProcess:
    cmd = ["gcc", "-std=gnu99", "-Os", "-Wall", "-Werror", "-Wno-unused-function",
           f"-I{MPY}", f"-I{MPY / 'ports' / 'unix'}", f"-I{ROOT / 'boards' / 'unix'}", f"-I{BUILD / 'unix'}",
           f"-I{PKCS11_DIR}", f"-I{MBEDTLS_36 / '3rdparty' / 'p256-m' / 'p256-m'}", f"-I{mbedtls_include}",
           "-DMICROPY_PY_SSL=1", "-DMICROPY_SSL_MBEDTLS=1", '-DMBEDTLS_CONFIG_FILE="mbedtls/mbedtls_config_port.h"',
           "-fsyntax-only" if syntax_only else "-c", str(src)]
    if not syntax_only:
        cmd += ["-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _nm(obj: Path) -> tuple[set[str], set[str]]:
    """(defined, undefined) global symbols of an object file."""
    proc = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True)
    defined, undefined = set(), set()
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDRBCV":
            defined.add(parts[2])
    return defined, undefined


def test_pkcs11_links_without_the_hook_and_the_hook_needs_only_its_rng(tmp_path):
    """Object level: nothing in _pkcs11 refers to _p11tls or to the wrapped symbol,
    so a firmware with USER_C_MODULES holding only pkcs11 links; _p11tls uses only
    _pkcs11's DRBG functions."""
    _need_unix_build()
    syms: dict[str, tuple[set[str], set[str]]] = {"pkcs11": (set(), set()), "p11tls": (set(), set())}
    for name, folder in (("pkcs11", PKCS11_DIR), ("p11tls", P11TLS_DIR)):
        for src in _sources(folder):
            obj = tmp_path / f"{name}_{src.stem}.o"
            proc = _compile(src, obj, MBEDTLS_36 / "include")
            assert proc.returncode == 0, (src.name, proc.stderr[-3000:])
            d, u = _nm(obj)
            syms[name][0].update(d)
            syms[name][1].update(u)
    pk_def, pk_undef = syms["pkcs11"]
    tls_def, tls_undef = syms["p11tls"]
    assert not {s for s in pk_undef if "wrap" in s or "__real" in s or "p11tls" in s}, pk_undef
    assert not {s for s in pk_def if "wrap" in s or "p11tls" in s}
    assert "__wrap_mbedtls_pk_sign_restartable" in tls_def
    assert "__real_mbedtls_pk_sign_restartable" in tls_undef
    from_pkcs11 = {s for s in tls_undef if s.startswith("pkcs11_")}
    assert "pkcs11_rng" in from_pkcs11
    assert from_pkcs11 <= {"pkcs11_rng", "pkcs11_raise_rng", "pkcs11_drbg_init"} and from_pkcs11 <= pk_def
    assert not {s for s in tls_undef if s.startswith("mbedtls_entropy") or s.startswith("mbedtls_ctr_drbg")}


def _git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").is_dir() else repo


def _mbedtls_35_tree() -> Path | None:
    candidates = []
    if os.environ.get("MBEDTLS_3_5_DIR"):
        candidates.append(Path(os.environ["MBEDTLS_3_5_DIR"]))
    unpacked = BUILD / "mbedtls-3.5.2"
    candidates.append(unpacked)
    mirror = os.environ.get("MIRROR")
    if mirror and not (unpacked / "include" / "mbedtls" / "build_info.h").exists():
        git_dir = _git_dir(Path(mirror) / "Mbed-TLS+mbedtls" / "repo")
        if git_dir.is_dir():
            tmp = BUILD / "mbedtls-3.5.2.part"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", MBEDTLS_35_COMMIT,
                                      "include", "3rdparty/p256-m"], capture_output=True)
            if archive.returncode == 0:
                subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
                shutil.rmtree(unpacked, ignore_errors=True)
                tmp.rename(unpacked)
    candidates.append(Path.home() / ".cache" / "esp32c3" / "idf-v5.2.2" / "components" / "mbedtls" / "mbedtls")
    for tree in candidates:
        info = tree / "include" / "mbedtls" / "build_info.h"
        if info.exists() and '#define MBEDTLS_VERSION_STRING         "3.5.2"' in info.read_text():
            return tree
    return None


def test_c_modules_compile_against_mbedtls_3_5_2(tmp_path):
    _need_unix_build()
    tree = _mbedtls_35_tree()
    if tree is None:
        pytest.skip("mbedTLS 3.5.2 headers not found: set MBEDTLS_3_5_DIR to an mbedTLS v3.5.2 tree, or MIRROR "
                    "to a folder with a git copy of Mbed-TLS/mbedtls at Mbed-TLS+mbedtls/repo")
    failures = []
    for src in _sources(PKCS11_DIR) + _sources(P11TLS_DIR):
        proc = _compile(src, tmp_path / "x.o", tree / "include", syntax_only=True)
        if proc.returncode != 0:
            failures.append(f"{src.name}:\n{proc.stderr[-2000:]}")
    assert not failures, "\n".join(failures)
    # and the list the always-run API test trusts is true of 3.5.2
    headers = "\n".join(p.read_text(errors="replace") for p in (tree / "include").rglob("*.h"))
    missing = sorted(f for f in MBEDTLS_35_CALLS if not re.search(rf"\b{f}\s*\(", headers))
    assert not missing, f"not declared by mbedTLS 3.5.2: {missing}"


def test_the_3_5_2_compile_check_catches_a_36_only_call(tmp_path):
    """Negative control: issue 14's parse.c fails against the 3.5.2 headers."""
    _need_unix_build()
    tree = _mbedtls_35_tree()
    if tree is None:
        pytest.skip("mbedTLS 3.5.2 headers not found (see test_c_modules_compile_against_mbedtls_3_5_2)")
    src = tmp_path / "uses_36.c"
    src.write_text('#include "mbedtls/ecp.h"\n'
                   "int f(const mbedtls_ecp_keypair *kp) { return mbedtls_ecp_keypair_get_group_id(kp); }\n")
    assert _compile(src, tmp_path / "x.o", tree / "include", syntax_only=True).returncode != 0
    assert _compile(src, tmp_path / "x.o", MBEDTLS_36 / "include", syntax_only=True).returncode == 0
