"""_pkcs11 frees what it allocates, on success, on error and when memory runs out.

On the qemu board mbedTLS allocates from MicroPython's heap through tracked
allocations that the garbage collector never frees: a context leaked on some
path shows up as heap still in use after gc.collect(). On unix mbedTLS uses
the C heap, so a leak there shows up in the process's resident size.
The out-of-memory sweep makes allocations fail at every point of each
operation and then checks that the heap is back where it was and that the
operations still give right answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cmodule import CModule
from harness.device_json import snippet

DEVICE_SCRIPT = snippet("cmodule_memory")


def _make_inputs(cmodule: CModule, folder: Path) -> None:
    o = cmodule.openssl
    o("genrsa", "-traditional", "-out", "m_rsa.pem", "2048")
    o("ecparam", "-name", "prime256v1", "-genkey", "-out", "m_ec.pem")
    o("req", "-x509", "-new", "-key", "m_ec.pem", "-subj", "/CN=mem", "-days", "2", "-out", "m_cert.pem")
    o("pkcs8", "-topk8", "-in", "m_ec.pem", "-v2", "aes-128-cbc", "-passout", "pass:x", "-out", "m_enc.pem")
    if folder != cmodule.work_dir:
        for name in ("m_rsa.pem", "m_ec.pem", "m_cert.pem", "m_enc.pem"):
            (folder / name).write_bytes((cmodule.work_dir / name).read_bytes())


def _results(output: str) -> dict[str, list[str]]:
    values = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isupper():
            values[parts[0]] = parts[1:]
    return values


def _script(rounds: int, slacks: list[int]) -> str:
    return f"ROUNDS = {rounds}\nSLACKS = {slacks!r}\n" + DEVICE_SCRIPT


def _check(out: str, heap_limit: int, rss_limit_kb: int | None) -> None:
    r = _results(out)
    assert r["STILL_OK"] == ["True"], out
    first, second = (int(v) for v in r["OOM_FAILURES"])
    assert first > 0 and second > 0, "the sweep never ran out of memory:\n" + out
    # The first batch may still settle caches; the second must not grow.
    assert int(r["HEAP_GROWTH"][1]) <= heap_limit, out
    assert int(r["OOM_HEAP_GROWTH"][1]) <= heap_limit, out
    if rss_limit_kb is not None:
        assert int(r["RSS_GROWTH_KB"][1]) <= rss_limit_kb, out
        assert int(r["OOM_RSS_GROWTH_KB"][1]) <= rss_limit_kb, out


def test_no_leaks_and_clean_out_of_memory_on_unix(cmodule):
    _make_inputs(cmodule, cmodule.work_dir)
    # A small MicroPython heap; mbedTLS uses the C heap here, so the sweep
    # hits our own allocations (results, PEM buffers) and the RSS shows leaks.
    slacks = list(range(0, 1200, 7)) + list(range(1200, 6000, 97))
    out = cmodule.fw.run(_script(rounds=150, slacks=slacks), heap="96k")
    # 150 rounds x 13 calls: leaking even 16 bytes per call would show.
    _check(out, heap_limit=256, rss_limit_kb=24)


@pytest.mark.qemu
@pytest.mark.slow
def test_no_leaks_and_clean_out_of_memory_on_qemu(cmodule, qemu_board, tmp_path):
    _make_inputs(cmodule, cmodule.work_dir)
    for name in ("m_rsa.pem", "m_ec.pem", "m_cert.pem", "m_enc.pem"):
        qemu_board.cp_to(cmodule.work_dir / name, name)
    script = tmp_path / "mem.py"
    script.write_text(_script(rounds=2, slacks=list(range(0, 12000, 173))))
    out = qemu_board.run_file(script, timeout=3000)
    # mbedTLS allocates tracked blocks from the MicroPython heap here, which
    # gc never frees: a leaked context (>= 100 bytes) would stay in use.
    _check(out, heap_limit=64, rss_limit_kb=None)
