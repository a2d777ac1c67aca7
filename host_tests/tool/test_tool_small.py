"""The smaller first-hour defects of issue 9 item 10: --json everywhere (failures
too), the MicroPython version in info, one serial number in show, openssl's
/CN=x subject form, --timeout honoured when the raw REPL does not answer."""

from __future__ import annotations

import json
import os
import pty
import time

from harness.p11board import P11Board


def test_json_for_every_command_and_for_failures(tool_unix, seed_files):
    r = tool_unix("import-key", str(seed_files.key), "--json")
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["command"] == "import-key" and doc["exit"] == 0
    assert any("stored" in m for m in doc["messages"])
    r = tool_unix("generate-key", "--label", "k2", "--json")
    assert "BEGIN PUBLIC KEY" in json.loads(r.stdout)["output"]
    r = tool_unix("show", "nothing", "--json", expect=5)
    doc = json.loads(r.stdout)
    assert doc == {**doc, "ok": False, "exit": 5} and "no object labelled" in doc["error"]
    r = tool_unix("csr", "--subject", "/CN=x", "--json", expect=2)
    assert "'CN=x'" in json.loads(r.stdout)["error"]


def test_info_names_micropython_and_show_has_one_serial(tool_unix, seed_files):
    r = tool_unix("info")
    assert "firmware:    MicroPython 1.25.0" in r.stdout, r.stdout
    tool_unix("import-ca", str(seed_files.ca))
    r = tool_unix("show", "Root Cert")
    assert "CKA_SERIAL_NUMBER" not in r.stdout and r.stdout.count("serial") == 1, r.stdout
    assert "None" not in r.stdout


def test_openssl_subject_form_gets_a_suggestion(tool_unix):
    r = tool_unix("csr", "--subject", "/CN=my-thing/O=Example", expect=2)
    assert "--subject 'CN=my-thing,O=Example'" in r.stderr, r.stderr


def test_timeout_is_honoured_when_no_raw_repl_answers(tmp_path):
    master, slave = pty.openpty()
    try:
        started = time.monotonic()
        r = P11Board(["--device", os.ttyname(slave), "--timeout", "3"], tmp_path)("list", expect=3)
        took = time.monotonic() - started
    finally:
        os.close(master)
        os.close(slave)
    assert "raw REPL" in r.stderr
    assert took < 9, took                    # was 10 s and more for --timeout 3
