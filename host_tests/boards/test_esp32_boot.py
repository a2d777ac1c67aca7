"""The ESP32 board's Python side on the unix firmware: the token partition
mounted by p11boot (and by the board's _boot.py) on a stand-in esp32.Partition
over a 4 MiB flash image, the token's objects kept across remounts."""

from __future__ import annotations

import ast
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from harness.esp32 import ESP32_FLASH_SIZE, esp32_partition
from harness.paths import BUILD, ROOT

PORT_MODULES = BUILD / "micropython" / "ports" / "esp32" / "modules"


def _outside(image: bytes, name: str) -> bytes:
    off, size = esp32_partition(name)
    return image[:off] + image[off + size:]


def test_standin_partition_follows_the_esp32_port(unix_fw, esp32_flash):
    """What the tests below rely on, as ports/esp32/esp32_partition.c behaves."""
    out = unix_fw.run("""
        import esp32
        P = esp32.Partition
        r = {}
        t = P.find(P.TYPE_DATA, label="token")
        r["find"] = len(t), len(P.find(P.TYPE_DATA)), len(P.find(P.TYPE_APP)), len(P.find(P.TYPE_DATA, label="x"))
        p = t[0]
        r["info"] = p.info()
        r["ioctl"] = [p.ioctl(1, 0), p.ioctl(2, 0), p.ioctl(3, 0), p.ioctl(4, 0), p.ioctl(5, 0), p.ioctl(99, 0)]
        b = bytearray(16)
        p.writeblocks(1, b"\\x0f" * 4096)                  # simple write: erases first
        p.readblocks(1, b, 4090); r["after_write"] = bytes(b[:6])
        p.writeblocks(1, b"\\xf0\\xf0", 10)                 # extended: program only (AND)
        p.readblocks(1, b, 8); r["and"] = bytes(b[:6])
        r["stats"] = dict(esp32.stats["token"])
        r["erase"] = p.ioctl(6, 1)
        p.readblocks(1, b, 0); r["erased"] = bytes(b[:4])
        try:
            p.readblocks(p.ioctl(4, 0), b)
            r["past_end"] = "read"
        except OSError as e:
            r["past_end"] = e.errno
        small = P.find(P.TYPE_DATA, label="token", block_size=512)[0]
        r["small"] = small.ioctl(4, 0), small.ioctl(5, 0), small.ioctl(6, 0)
        print(repr(r))
    """, env=esp32_flash.env)
    r = ast.literal_eval(out.strip())
    off, size = esp32_partition("token")
    assert r["find"] == (1, 4, 1, 0)          # nvs, phy_init, vfs, token; factory
    assert r["info"] == (1, 0x83, off, size, "token", False)
    assert r["ioctl"] == [0, 0, 0, size // 4096, 4096, None]
    assert r["after_write"] == b"\x0f" * 6
    assert r["and"] == b"\x0f\x0f\x00\x00\x0f\x0f"             # 0x0f & 0xf0: bits only cleared
    assert r["stats"] == {"erase": 1, "write": 2, "bad_write": 1}
    assert r["erase"] == 0 and r["erased"] == b"\xff" * 4
    assert r["past_end"] == 22
    assert r["small"] == (size // 512, 512, -22)
    image = esp32_flash.image.read_bytes()
    assert _outside(image, "token") == b"\xff" * (ESP32_FLASH_SIZE - size)


MOUNT_AND_USE = """
    import os, p11boot, esp32, pkcs11
    from pkcs11 import config
    print("mounted", p11boot.mount_token())
    print("token dir", config.token_dir())
"""


def test_blank_token_partition_is_formatted_once_and_keeps_objects(unix_fw, esp32_flash, seed_files):
    (unix_fw.work_dir / "device.key").write_bytes(seed_files.key.read_bytes())
    first = unix_fw.run(MOUNT_AND_USE + """
    with pkcs11.open_session() as s:
        s.import_pem(open("device.key", "rb").read(), public_label="Device Pub TLS Key")
        pub, priv = s.generate_keypair(label="Born Here")
        print("points", repr(pub[0x181]))
    print("files", sorted(os.listdir("/token")))
    print("stats", esp32.stats["token"]["bad_write"], esp32.stats["token"]["erase"] > 0)
    """, env=esp32_flash.env)
    assert "is blank: formatting it as an empty token store" in first
    assert "mounted /token" in first and "token dir /token" in first
    assert "stats 0 True" in first                    # littlefs erased before programming, always
    assert "token.rec" in first
    image = esp32_flash.image.read_bytes()
    # outside the token partition only NVS changed: the device key and the
    # rollback counter of the records live there (pkcs11.devkey)
    nvs_off, nvs_size = esp32_partition("nvs")
    rest = _outside(image, "token")
    tok_off = esp32_partition("token")[0]
    assert nvs_off + nvs_size <= tok_off
    assert rest[:nvs_off] + rest[nvs_off + nvs_size:] == b"\xff" * (ESP32_FLASH_SIZE - esp32_partition("token")[1]
                                                                   - nvs_size)
    assert b"devkey" in image[nvs_off:nvs_off + nvs_size]
    assert esp32_flash.read("token")[8:16] == b"littlefs"

    # a new boot: mounted without formatting; both keys still sign
    second = unix_fw.run(MOUNT_AND_USE + """
    from pkcs11.constants import *
    with pkcs11.open_session() as s:
        for label in ("Device Priv TLS Key", "Born Here"):
            k = s.get_key(object_class=CKO_PRIVATE_KEY, label=label)
            p = s.get_key(object_class=CKO_PUBLIC_KEY, label=label if label == "Born Here" else "Device Pub TLS Key")
            print("sig", repr((label, k.sign(b"esp32 token", CKM_ECDSA_SHA256), p[CKA_EC_POINT])))
    """, env=esp32_flash.env)
    assert "formatting" not in second and "mounted /token" in second
    sigs = [ast.literal_eval(line[4:]) for line in second.splitlines() if line.startswith("sig ")]
    assert [label for label, _sig, _point in sigs] == ["Device Priv TLS Key", "Born Here"]
    seed_pub = serialization.load_pem_private_key(seed_files.key.read_bytes(), None).public_key()
    for label, sig, point in sigs:
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point[2:])
        r, s_ = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        pub.verify(utils.encode_dss_signature(r, s_), b"esp32 token", ec.ECDSA(hashes.SHA256()))
        if label == "Device Priv TLS Key":
            assert pub.public_numbers() == seed_pub.public_numbers()


def test_foreign_data_is_not_formatted_unless_asked(unix_fw, esp32_flash):
    junk = bytes(range(256)) * 32                           # 8 KiB: not erased, not littlefs
    esp32_flash.write("token", junk)
    out = unix_fw.run(MOUNT_AND_USE, env=esp32_flash.env)
    assert "mounted None" in out
    assert "does not hold a littlefs token store" in out and "not formatting it" in out
    assert "ERASE_TOKEN=1" in out and "format_token()" in out
    assert esp32_flash.read("token")[:len(junk)] == junk     # untouched
    # not mounted: the token does not silently use /token
    assert "token dir /token" not in out

    out = unix_fw.run("""
        import os, p11boot
        print("mounted", p11boot.format_token())
        print("files", os.listdir("/token"))
    """, env=esp32_flash.env)
    assert "mounted /token" in out and "files []" in out
    assert esp32_flash.read("token")[8:16] == b"littlefs"


def test_no_token_partition_in_the_table(unix_fw, esp32_flash, tmp_path):
    csv = tmp_path / "no-token.csv"
    csv.write_text("".join(line + "\n" for line in esp32_flash.partitions.read_text().splitlines()
                           if not line.startswith("token")))
    env = dict(esp32_flash.env, ESP32_PARTITIONS=str(csv))
    out = unix_fw.run(MOUNT_AND_USE, env=env)
    assert "no 'token' partition in the partition table" in out and "mounted None" in out


def test_the_boards_boot_mounts_root_and_token_like_the_esp32(unix_fw, esp32_flash):
    """boards/ESP32_PKCS11/modules/_boot.py with the port's flashbdev.py and
    inisetup.py, after unmounting the host filesystem: the first boot sets up
    the "vfs" filesystem at / and the token at /token; the second finds both."""
    for name in ("flashbdev.py", "inisetup.py"):
        (unix_fw.work_dir / name).write_bytes((PORT_MODULES / name).read_bytes())
    (unix_fw.work_dir / "board_boot.py").write_bytes(
        (ROOT / "boards" / "ESP32_PKCS11" / "modules" / "_boot.py").read_bytes())
    boot = """
        import esp32, flashbdev, inisetup, vfs, os
        src = open("board_boot.py").read()
        vfs.umount("/")
        exec(src)
        import pkcs11
        from pkcs11 import config
        print("mounts", sorted(p for _f, p in vfs.mount()))
        print("root", sorted(os.listdir("/")))
        print("token dir", config.token_dir())
        with pkcs11.open_session() as s:
            if not s.find_objects(label="Boot Key"):
                s.generate_keypair(label="Boot Key")
            print("objects", sorted(o.label.decode() for o in s.find_objects()))
    """
    first = unix_fw.run(boot, env=esp32_flash.env)
    assert "Performing initial setup" in first                   # the port's inisetup on a blank vfs
    assert "partition 'token' at 0x3e0000 (128 KiB) is blank: formatting it" in first
    assert "mounts ['/', '/token']" in first
    assert "'boot.py'" in first and "token dir /token" in first
    assert "objects ['Boot Key', 'Boot Key']" in first
    second = unix_fw.run(boot, env=esp32_flash.env)
    assert "Performing initial setup" not in second and "formatting" not in second
    assert "objects ['Boot Key', 'Boot Key']" in second
    # the token's records are on the token partition, not on the filesystem partition
    assert b"Boot Key" in esp32_flash.read("token")
    assert b"Boot Key" not in esp32_flash.read("vfs")


def test_p11board_scripts_warn_when_the_token_partition_is_not_mounted(unix_fw, esp32_flash):
    """On an ESP32 whose token partition did not mount, the token would fall back to
    the general filesystem: p11board's device scripts say so."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from p11board import device
    finally:
        sys.path.pop(0)
    info = device.script(device.INFO, CONFIG_FILE=device.CONFIG_FILE)

    def answer(out: str) -> tuple[dict, list[str]]:
        lines = out.split("\n")          # not splitlines(): it splits at the \x1e marker too
        result = [ast.literal_eval(x[len(device.MARK) + 1:]) for x in lines if x.startswith(device.MARK + "R")]
        progress = [ast.literal_eval(x[len(device.MARK) + 1:]) for x in lines if x.startswith(device.MARK + "P")]
        assert len(result) == 1, out
        return result[0], progress

    esp32_flash.write("token", bytes(range(256)) * 32)         # foreign data: p11boot will not mount it
    r, progress = answer(unix_fw.run("import p11boot\np11boot.mount_token()\n" + info, env=esp32_flash.env))
    assert r["token_partition"] == "not mounted" and r["token_dir"] != "/token"
    assert any("WARNING: the board's 'token' partition is not mounted" in p for p in progress)

    r, progress = answer(unix_fw.run("import p11boot\np11boot.format_token()\n" + info, env=esp32_flash.env))
    assert r["token_partition"] == "mounted" and r["token_dir"] == "/token" and progress == []
