"""A NOR-flash model under VfsLfs2 on the unix firmware, and a power cut at
every program and erase of every token operation (issue 10, reliability plan).

The model: 4096-byte sectors, erase sets a sector to 0xFF, program can only
clear bits (new = old AND data; a program that would set a bit is counted as a
violation), and a cut can leave the operation half done: a torn program has
written only the first half of its bytes, a torn erase has set only the first
half of the sector to 0xFF.  Each token operation runs once with the
operations logged; then for every operation k two images are rebuilt from the
image before the token operation: ops[:k] done (the cut came just before k) and
ops[:k] plus k torn.  Each image must mount, the token must not be damaged,
every committed object must read back unchanged, and the interrupted object
must be all old/absent or all new/present."""

from __future__ import annotations

from harness.token_files import P11_PRELUDE, last_json
from harness.device_json import snippet

NOR = snippet("nor_flash_model")

RUN = NOR + P11_PRELUDE + snippet("nor_flash_cuts")


def test_cut_at_every_program_and_erase_of_every_token_operation(unix_fw) -> None:
    res = last_json(unix_fw.run(RUN, timeout=1200, heap="16M"))
    assert res["violations"] == 0, "littlefs programmed bits from 0 to 1"
    failures = []
    seen: dict[str, set] = {}
    for name, r in res["results"].items():
        assert r["ops"] >= 1, f"{name}: the flash operations were observed"
        for k, torn, st in r["states"]:
            where = f"{name} cut at op {k}/{r['ops']}{' (torn)' if torn else ''}: {st}"
            if "error" in st:
                failures.append(where)
                continue
            ok = st["keep"] == "K300" and st["bad"] == 0 and st["login"] in (None, "OK")
            if name == "create":
                ok = ok and st["made"] in (None, "M500") and st["old"] == "O700" and st["doomed"] == "D100"
                seen.setdefault(name, set()).add(st["made"])
            elif name == "replace":
                ok = ok and (st["old"], st["new"]) in (("O700", None), (None, "N900"))
                seen.setdefault(name, set()).add(st["new"])
            elif name == "destroy":
                ok = ok and st["doomed"] in (None, "D100") and st["new"] == "N900"
                seen.setdefault(name, set()).add(st["doomed"])
            elif name == "set_pin":
                # before: no PIN, everything visible; after: the PIN works
                ok = ok and st["new"] == "N900"
                seen.setdefault(name, set()).add(st["pin"])
            elif name == "wrong_pin":
                ok = ok and st["pin"] and st["login"] == "OK"
            if not ok:
                failures.append(where)
    assert not failures, "\n".join(failures[:20])
    assert seen["create"] == {None, "M500"} and seen["replace"] == {None, "N900"}
    assert seen["destroy"] == {None, "D100"} and seen["set_pin"] == {False, True}
    print(f"cut points tried: {res['tried']}, failed: {len(failures)}")
