"""Finding 3 (issue 10), per object: the rollback counter covered the token record
only, so anyone who can write the flash could put back an older authenticated
version of one object record, or the record of a destroyed object. The token
record now holds a directory of every object's epoch (store.py), and such records
are damaged; a power cut between an object's write and the directory's is rolled
forward, one between a record's removal and the directory's is dropped."""

from __future__ import annotations

import shutil
import subprocess

from harness.token_files import P11_PRELUDE, last_json
from p11lab.unix import firmware_env

SETUP = P11_PRELUDE + """
p11.C_Initialize()
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
def data_obj(label, value):
    return p11.C_CreateObject(h, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_LABEL, label),
                                  (CKA_VALUE, value)])
def value(o):
    try:
        return p11.C_GetAttributeValue(h, o, [CKA_VALUE])[0].decode()
    except Exception as e:
        return type(e).__name__
def state(objs):
    return {"values": [value(o) for o in objs], "bad": [[b, str(r)] for b, r in p11.corrupted_objects()]}
"""


def _state(fw, objs: list[int]) -> dict:
    return last_json(fw.run(SETUP + f"print(json.dumps(state({objs!r})))"))


def test_an_older_version_of_an_object_record_is_refused(unix_fw):
    objs = last_json(unix_fw.run(SETUP + "print(json.dumps([data_obj(b'a', b'v1'), data_obj(b'b', b'keep')]))"))
    record = unix_fw.token_dir / f"{objs[0]:08x}.obj"
    old = record.read_bytes()
    unix_fw.run(SETUP + f"p11.C_SetAttributeValue(h, {objs[0]}, [(CKA_VALUE, b'v2')])")
    assert _state(unix_fw, objs) == {"values": ["v2", "keep"], "bad": []}
    record.write_bytes(old)                     # authentic, MAC intact, but older
    st = _state(unix_fw, objs)
    assert st["values"] == ["DeviceError", "keep"], st
    assert st["bad"] and st["bad"][0][0] == objs[0] and "rolled back" in st["bad"][0][1], st


def test_a_destroyed_objects_record_put_back_is_refused(unix_fw, tmp_path):
    objs = last_json(unix_fw.run(SETUP + "print(json.dumps([data_obj(b'gone', b'secret'), data_obj(b'b', b'keep')]))"))
    record = unix_fw.token_dir / f"{objs[0]:08x}.obj"
    shutil.copy(record, tmp_path / "saved.obj")
    unix_fw.run(SETUP + f"p11.C_DestroyObject(h, {objs[0]})")
    shutil.copy(tmp_path / "saved.obj", record)
    st = _state(unix_fw, objs)
    assert st["values"] == ["DeviceError", "keep"], st
    assert st["bad"] == [[objs[0], "not in the token's directory (a destroyed object put back?)"]], st


CUT = SETUP + """
import sys
from pkcs11 import store
def fault(stage, name):
    if (stage, name.endswith(".obj")) == STAGE:
        print("power cut at", stage, name)
        sys.exit(3)
store.fault = fault
WHAT
"""


def _cut(fw, stage: tuple[str, bool], what: str) -> None:
    p = fw.work_dir / "cut.py"
    p.write_text(CUT.replace("STAGE", repr(stage)).replace("WHAT", what))
    proc = fw.run_file(p, check=False)
    assert proc.returncode == 3 and "power cut at" in proc.stdout, proc.stdout + proc.stderr


def test_cuts_between_an_object_and_the_directory(unix_fw):
    objs = last_json(unix_fw.run(SETUP + "print(json.dumps([data_obj(b'a', b'v1')]))"))
    # the object's new record is in place, the directory not yet: the new one is taken
    _cut(unix_fw, ("renamed", True), f"p11.C_SetAttributeValue(h, {objs[0]}, [(CKA_VALUE, b'v2')])")
    assert _state(unix_fw, objs) == {"values": ["v2"], "bad": []}
    # a create cut the same way: the object is there
    _cut(unix_fw, ("renamed", True), "data_obj(b'new', b'n1')")
    made = objs[0] + 1
    assert _state(unix_fw, objs + [made]) == {"values": ["v2", "n1"], "bad": []}
    # ...and stays valid once later writes have moved the generation on
    unix_fw.run(SETUP + "data_obj(b'later', b'l1')")
    assert _state(unix_fw, objs + [made]) == {"values": ["v2", "n1"], "bad": []}
    # a destroy cut after the record's removal: the object is gone, nothing damaged
    _cut(unix_fw, ("removed", True), f"p11.C_DestroyObject(h, {made})")
    assert _state(unix_fw, objs + [made]) == {"values": ["v2", "ObjectHandleInvalid"], "bad": []}


def test_another_process_writing_twice_is_not_a_rollback(unix_fw):
    """A process that read the directory earlier sees records another process has
    written since (two generations ahead): it reads the directory again, not
    reporting them as damaged."""
    objs = last_json(unix_fw.run(SETUP + "print(json.dumps([data_obj(b'a', b'v1')]))"))
    go = unix_fw.work_dir / "go"
    script = unix_fw.work_dir / "reader.py"
    script.write_text(SETUP + f"""
import os, time
print("loaded")
while True:
    try:
        os.stat({str(go)!r})
        break
    except OSError:
        time.sleep(0.01)
print(json.dumps(state({objs!r})))
""")
    reader = subprocess.Popen([str(unix_fw.binary), "-X", "heapsize=8M", str(script)],
                              stdout=subprocess.PIPE, text=True, cwd=unix_fw.work_dir,
                              env=firmware_env(unix_fw.token_dir, f".frozen:{unix_fw.work_dir}"))
    try:
        assert reader.stdout.readline().strip() == "loaded"
        unix_fw.run(SETUP + f"p11.C_SetAttributeValue(h, {objs[0]}, [(CKA_VALUE, b'v2')])\n"
                            f"p11.C_SetAttributeValue(h, {objs[0]}, [(CKA_VALUE, b'v3')])")
        go.write_text("")
        out, _ = reader.communicate(timeout=120)
    finally:
        reader.kill()
    assert last_json(out) == {"values": ["v3"], "bad": []}


def test_a_token_written_before_directories_keeps_working(unix_fw):
    """Records as the previous release wrote them (no epoch, no directory: the
    store's attributes stripped and the records authenticated again) still load,
    and the next write gives the token its directory."""
    objs = last_json(unix_fw.run(SETUP + "print(json.dumps([data_obj(b'a', b'v1'), data_obj(b'b', b'v2')]))"))
    unix_fw.run(P11_PRELUDE + """
import os
from pkcs11 import store, config
st = store.Store(config.token_dir())
k = st._mac_key()
for name in os.listdir(st.root):
    if name.endswith(".obj") or name == store.META:
        with open(st._path(name), "rb") as f:
            data = f.read()
        kind = data[5:6]
        h, attrs = store.decode(data, kind, None, k)
        attrs.pop(store._EPOCH, None)
        attrs.pop(store._DIR, None)
        with open(st._path(name), "wb") as f:
            f.write(store.encode(kind, h, attrs, k))
""")
    assert _state(unix_fw, objs) == {"values": ["v1", "v2"], "bad": []}
    made = last_json(unix_fw.run(SETUP + "print(json.dumps(data_obj(b'c', b'v3')))"))
    assert _state(unix_fw, objs + [made]) == {"values": ["v1", "v2", "v3"], "bad": []}
    # the directory now covers the old objects too
    record = unix_fw.token_dir / f"{objs[0]:08x}.obj"
    old = record.read_bytes()
    unix_fw.run(SETUP + f"p11.C_SetAttributeValue(h, {objs[0]}, [(CKA_VALUE, b'v1b')])")
    record.write_bytes(old)
    st = _state(unix_fw, objs + [made])
    assert st["values"] == ["DeviceError", "v2", "v3"] and "rolled back" in st["bad"][0][1], st


def test_records_from_before_c_inittoken_stay_out(unix_fw, tmp_path):
    """C_InitToken removes every object and empties the directory: a record saved
    before it and put back afterwards is refused (the directory written by
    C_InitToken used to keep the removed objects' entries, which let it in)."""
    objs = last_json(unix_fw.run(SETUP + "print(json.dumps([data_obj(b'old', b'secret')]))"))
    record = unix_fw.token_dir / f"{objs[0]:08x}.obj"
    shutil.copy(record, tmp_path / "saved.obj")
    unix_fw.run(P11_PRELUDE + "p11.C_Initialize()\np11.C_InitToken(0, b'so-pin', b'fresh')")
    shutil.copy(tmp_path / "saved.obj", record)
    st = _state(unix_fw, objs)
    assert st["values"] == ["DeviceError"], st
    assert st["bad"] == [[objs[0], "not in the token's directory (a destroyed object put back?)"]], st
