"""The unix firmware carries our frozen package, our C module and what the token needs."""


def test_frozen_package_and_c_module_import(unix_fw):
    out = unix_fw.run("""
        import pkcs11, _pkcs11
        print(pkcs11.__file__, _pkcs11.API_VERSION >= 1)
    """)
    # The test's folder holds no pkcs11 sources, so a relative path means frozen.
    assert out.split() == ["pkcs11/__init__.py", "True"]
    assert not (unix_fw.work_dir / "pkcs11").exists()


def test_firmware_has_tls_socket_hashlib_lfs2_thread(unix_fw):
    out = unix_fw.run("""
        import tls, socket, hashlib, os, _thread
        print(hashlib.sha256(b'abc').digest().hex())
        print(hasattr(os, 'VfsLfs2'), hasattr(tls, 'SSLContext'))
    """)
    lines = out.split()
    assert lines[0] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert lines[1:] == ["True", "True"]
