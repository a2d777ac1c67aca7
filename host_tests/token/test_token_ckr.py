"""Every CKR path of the token: each case calls the API on the unix firmware
and checks the return code.  The cases of one group run in one firmware
process (fast); each case is its own test item."""

from __future__ import annotations

import pytest

from harness.token_files import P11_PRELUDE, TokenKeys, last_json
from harness.unix import UNIX_BIN, UnixFirmware

# Shared by the groups: R collects case -> "OK" / CKR name.
COMMON = P11_PRELUDE + """
R = {}
def rec(name, f, *a, **k):
    R[name] = ckr(f, *a, **k)
def rw_session():
    return p11.C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION)
def ec_key(h, label=b"k", token=True, **extra):
    d = b"\\x11" * 32
    t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, token),
         (CKA_LABEL, label), (CKA_EC_PARAMS, P256), (CKA_VALUE, d)]
    for a, v in extra.items():
        t.append((globals()["CKA_" + a], v))
    return p11.C_CreateObject(h, t)
def ec_pub(h, label=b"p", token=True, **extra):
    from pkcs11 import crypto
    q = crypto.ec_public(b"\\x11" * 32)
    t = [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, token),
         (CKA_LABEL, label), (CKA_EC_PARAMS, P256), (CKA_EC_POINT, b"\\x04\\x41" + q)]
    for a, v in extra.items():
        t.append((globals()["CKA_" + a], v))
    return p11.C_CreateObject(h, t)
def rsa_template(label=b"r"):
    from pkcs11 import crypto
    k = crypto.parse_private_key(open("rsa_pkcs1.pem", "rb").read())
    return [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_RSA), (CKA_TOKEN, True),
            (CKA_LABEL, label), (CKA_MODULUS, k["n"]), (CKA_PUBLIC_EXPONENT, k["e"]),
            (CKA_PRIVATE_EXPONENT, k["d"]), (CKA_PRIME_1, k["p"]), (CKA_PRIME_2, k["q"]),
            (CKA_EXPONENT_1, k["dp"]), (CKA_EXPONENT_2, k["dq"]), (CKA_COEFFICIENT, k["qinv"])]
def without(t, attr):
    return [x for x in t if x[0] != attr]
def replaced(t, attr, v):
    return without(t, attr) + [(attr, v)]
"""
DONE = """
def J(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [J(x) for x in v]
    return v
print(json.dumps({k: J(v) for k, v in R.items()}))
"""

LIFECYCLE = COMMON + """
rec("get_slot_list_before_initialize", p11.C_GetSlotList, True)
rec("open_session_before_initialize", p11.C_OpenSession, 0, CKF_SERIAL_SESSION)
rec("finalize_before_initialize", p11.C_Finalize)
rec("initialize_bad_argument", p11.C_Initialize, 5)
p11.C_Initialize()
rec("initialize_twice", p11.C_Initialize)
rec("finalize_with_argument", p11.C_Finalize, None)
rec("get_token_info_bad_slot", p11.C_GetTokenInfo, 1)
rec("open_session_bad_slot", p11.C_OpenSession, 7, CKF_SERIAL_SESSION)
rec("open_session_without_serial_flag", p11.C_OpenSession, 0, CKF_RW_SESSION)
rec("close_session_handle_0", p11.C_CloseSession, 0)
rec("session_info_handle_0", p11.C_GetSessionInfo, 0)
rec("session_info_unknown_handle", p11.C_GetSessionInfo, 4242)
h = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
p11.C_CloseSession(h)
rec("session_info_closed_handle", p11.C_GetSessionInfo, h)
hs = [p11.C_OpenSession(0, CKF_SERIAL_SESSION) for i in range(10)]
rec("eleventh_session", p11.C_OpenSession, 0, CKF_SERIAL_SESSION)
p11.C_CloseAllSessions(0)
rec("session_after_close_all", p11.C_GetSessionInfo, hs[3])
rec("mechanism_info_unsupported_0x253", p11.C_GetMechanismInfo, 0, 0x253)
p11.C_Finalize()
rec("finalize_twice", p11.C_Finalize)
rec("open_session_after_finalize", p11.C_OpenSession, 0, CKF_SERIAL_SESSION)
""" + DONE

LIFECYCLE_EXPECTED = {
    "get_slot_list_before_initialize": "CRYPTOKI_NOT_INITIALIZED",
    "open_session_before_initialize": "CRYPTOKI_NOT_INITIALIZED",
    "finalize_before_initialize": "CRYPTOKI_NOT_INITIALIZED",
    "initialize_bad_argument": "ARGUMENTS_BAD",
    "initialize_twice": "CRYPTOKI_ALREADY_INITIALIZED",
    "finalize_with_argument": "ARGUMENTS_BAD",
    "get_token_info_bad_slot": "SLOT_ID_INVALID",
    "open_session_bad_slot": "SLOT_ID_INVALID",
    "open_session_without_serial_flag": "SESSION_PARALLEL_NOT_SUPPORTED",
    "close_session_handle_0": "SESSION_HANDLE_INVALID",
    "session_info_handle_0": "SESSION_HANDLE_INVALID",
    "session_info_unknown_handle": "SESSION_HANDLE_INVALID",
    "session_info_closed_handle": "SESSION_HANDLE_INVALID",
    "eleventh_session": "SESSION_COUNT",
    "session_after_close_all": "SESSION_HANDLE_INVALID",
    "mechanism_info_unsupported_0x253": "MECHANISM_INVALID",
    "finalize_twice": "CRYPTOKI_NOT_INITIALIZED",
    "open_session_after_finalize": "CRYPTOKI_NOT_INITIALIZED",
}

LOGIN = COMMON + """
pkcs11.configure(max_pin_failures=3)
p11.C_Initialize()
h = rw_session()
priv = ec_key(h, b"private one")          # fresh token: no PIN, no login needed
rec("sign_init_fresh_token_no_login", p11.C_SignInit, h, CKM_ECDSA, priv)
p11.C_Sign(h, b"x" * 32)
rec("login_user_without_pin", p11.C_Login, h, CKU_USER, b"1234")
rec("login_so_without_so_pin", p11.C_Login, h, CKU_SO, b"1234")
rec("login_bad_user_type", p11.C_Login, h, 7, b"1234")
rec("logout_not_logged_in", p11.C_Logout, h)
rec("init_token_with_open_session", p11.C_InitToken, 0, b"so-secret", b"tok")
p11.C_CloseAllSessions(0)
rec("init_token_short_so_pin", p11.C_InitToken, 0, b"so", b"tok")
rec("init_token", p11.C_InitToken, 0, b"so-secret", b"tok")
h = rw_session()
R["init_token_removed_objects"] = ckr(p11.C_GetAttributeValue, h, priv, [CKA_LABEL])
ro = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
rec("so_login_with_read_only_session", p11.C_Login, h, CKU_SO, b"so-secret")
p11.C_CloseSession(ro)
rec("init_pin_not_logged_in", p11.C_InitPIN, h, b"1234")
rec("so_login_wrong_pin", p11.C_Login, h, CKU_SO, b"wrong-pin")
rec("so_login", p11.C_Login, h, CKU_SO, b"so-secret")
rec("so_login_twice", p11.C_Login, h, CKU_SO, b"so-secret")
rec("user_login_while_so", p11.C_Login, h, CKU_USER, b"1234")
rec("read_only_session_while_so", p11.C_OpenSession, 0, CKF_SERIAL_SESSION)
rec("init_pin_too_short", p11.C_InitPIN, h, b"12")
rec("init_pin_too_long", p11.C_InitPIN, h, b"1" * 65)
rec("init_pin", p11.C_InitPIN, h, b"1234")
p11.C_Logout(h)
R["login_required_flag"] = p11.C_GetTokenInfo(0)["flags"] & CKF_LOGIN_REQUIRED != 0
rec("create_private_object_not_logged_in", ec_key, h, b"nope")
rec("create_public_object_not_logged_in", ec_pub, h, b"pub")
p11.C_Login(h, CKU_USER, b"1234")
priv = ec_key(h, b"private two")
p11.C_Logout(h)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"private two")])
R["private_hidden_from_find"] = len(p11.C_FindObjects(h, 5))
p11.C_FindObjectsFinal(h)
rec("get_attribute_private_not_logged_in", p11.C_GetAttributeValue, h, priv, [CKA_LABEL])
rec("sign_init_private_not_logged_in", p11.C_SignInit, h, CKM_ECDSA, priv)
rec("user_login_wrong_pin", p11.C_Login, h, CKU_USER, b"9999")
R["pin_count_low_flag"] = p11.C_GetTokenInfo(0)["flags"] & CKF_USER_PIN_COUNT_LOW != 0
rec("user_login", p11.C_Login, h, CKU_USER, b"1234")
R["pin_count_reset"] = p11.C_GetTokenInfo(0)["flags"] & CKF_USER_PIN_COUNT_LOW == 0
rec("user_login_twice", p11.C_Login, h, CKU_USER, b"1234")
rec("so_login_while_user", p11.C_Login, h, CKU_SO, b"so-secret")
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"private two")])
R["private_visible_after_login"] = len(p11.C_FindObjects(h, 5))
p11.C_FindObjectsFinal(h)
rec("sign_init_after_login", p11.C_SignInit, h, CKM_ECDSA, priv)
p11.C_Sign(h, b"y" * 32)
h2 = rw_session()
p11.C_CloseSession(h)
R["still_logged_in_with_one_session_left"] = p11.C_GetSessionInfo(h2)["state"] == CKS_RW_USER_FUNCTIONS
p11.C_CloseSession(h2)
h = rw_session()
R["last_session_close_logs_out"] = p11.C_GetSessionInfo(h)["state"] == CKS_RW_PUBLIC_SESSION
ro = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
rec("set_pin_read_only_session", p11.C_SetPIN, ro, b"1234", b"5678")
rec("set_pin_wrong_old_pin", p11.C_SetPIN, h, b"0000", b"5678")
rec("set_pin_new_too_short", p11.C_SetPIN, h, b"1234", b"56")
rec("set_pin", p11.C_SetPIN, h, b"1234", b"5678")
rec("login_old_pin_after_set_pin", p11.C_Login, h, CKU_USER, b"1234")
rec("login_new_pin", p11.C_Login, h, CKU_USER, b"5678")
p11.C_Logout(h)
rec("lockout_1", p11.C_Login, h, CKU_USER, b"bad1")
rec("lockout_2", p11.C_Login, h, CKU_USER, b"bad2")
R["final_try_flag"] = p11.C_GetTokenInfo(0)["flags"] & CKF_USER_PIN_FINAL_TRY != 0
rec("lockout_3", p11.C_Login, h, CKU_USER, b"bad3")
rec("locked_correct_pin", p11.C_Login, h, CKU_USER, b"5678")
R["locked_flag"] = p11.C_GetTokenInfo(0)["flags"] & CKF_USER_PIN_LOCKED != 0
p11.C_CloseSession(ro)
p11.C_Login(h, CKU_SO, b"so-secret")
rec("so_init_pin_unlocks", p11.C_InitPIN, h, b"2468")
p11.C_Logout(h)
rec("login_after_unlock", p11.C_Login, h, CKU_USER, b"2468")
p11.C_CloseAllSessions(0)
rec("init_token_wrong_so_pin", p11.C_InitToken, 0, b"not-the-so-pin", b"tok")
p11.C_Finalize()
# the lock counter and the PIN survive a restart of the library
p11.C_Initialize()
h = rw_session()
rec("login_after_reinitialize", p11.C_Login, h, CKU_USER, b"2468")
p11.C_Finalize()
""" + DONE

LOGIN_EXPECTED = {
    "sign_init_fresh_token_no_login": "OK",
    "login_user_without_pin": "USER_PIN_NOT_INITIALIZED",
    "login_so_without_so_pin": "USER_PIN_NOT_INITIALIZED",
    "login_bad_user_type": "USER_TYPE_INVALID",
    "logout_not_logged_in": "USER_NOT_LOGGED_IN",
    "init_token_with_open_session": "SESSION_EXISTS",
    "init_token_short_so_pin": "PIN_LEN_RANGE",
    "init_token": "OK",
    "init_token_removed_objects": "OBJECT_HANDLE_INVALID",
    "so_login_with_read_only_session": "SESSION_READ_ONLY_EXISTS",
    "init_pin_not_logged_in": "USER_NOT_LOGGED_IN",
    "so_login_wrong_pin": "PIN_INCORRECT",
    "so_login": "OK",
    "so_login_twice": "USER_ALREADY_LOGGED_IN",
    "user_login_while_so": "USER_ANOTHER_ALREADY_LOGGED_IN",
    "read_only_session_while_so": "SESSION_READ_WRITE_SO_EXISTS",
    "init_pin_too_short": "PIN_LEN_RANGE",
    "init_pin_too_long": "PIN_LEN_RANGE",
    "init_pin": "OK",
    "login_required_flag": True,
    "create_private_object_not_logged_in": "USER_NOT_LOGGED_IN",
    "create_public_object_not_logged_in": "OK",
    "private_hidden_from_find": 0,
    "get_attribute_private_not_logged_in": "USER_NOT_LOGGED_IN",
    "sign_init_private_not_logged_in": "USER_NOT_LOGGED_IN",
    "user_login_wrong_pin": "PIN_INCORRECT",
    "pin_count_low_flag": True,
    "user_login": "OK",
    "pin_count_reset": True,
    "user_login_twice": "USER_ALREADY_LOGGED_IN",
    "so_login_while_user": "USER_ANOTHER_ALREADY_LOGGED_IN",
    "private_visible_after_login": 1,
    "sign_init_after_login": "OK",
    "still_logged_in_with_one_session_left": True,
    "last_session_close_logs_out": True,
    "set_pin_read_only_session": "SESSION_READ_ONLY",
    "set_pin_wrong_old_pin": "PIN_INCORRECT",
    "set_pin_new_too_short": "PIN_LEN_RANGE",
    "set_pin": "OK",
    "login_old_pin_after_set_pin": "PIN_INCORRECT",
    "login_new_pin": "OK",
    "lockout_1": "PIN_INCORRECT",
    "lockout_2": "PIN_INCORRECT",
    "final_try_flag": True,
    "lockout_3": "PIN_INCORRECT",
    "locked_correct_pin": "PIN_LOCKED",
    "locked_flag": True,
    "so_init_pin_unlocks": "OK",
    "login_after_unlock": "OK",
    "init_token_wrong_so_pin": "PIN_INCORRECT",
    "login_after_reinitialize": "OK",
}

FIRST_PIN = COMMON + """
p11.C_Initialize()
h = rw_session()
priv = ec_key(h, b"before the pin")
ro = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
rec("first_pin_read_only_session", p11.C_SetPIN, ro, b"", b"1234")
rec("first_pin_nonempty_old", p11.C_SetPIN, h, b"0000", b"1234")
rec("first_pin_set_with_empty_old", p11.C_SetPIN, h, b"", b"1234")
rec("first_pin_now_needs_login", p11.C_GetAttributeValue, h, priv, [CKA_LABEL])
rec("first_pin_login", p11.C_Login, h, CKU_USER, "1234")
rec("first_pin_usable_after_login", p11.C_GetAttributeValue, h, priv, [CKA_LABEL])
p11.C_Finalize()
""" + DONE

FIRST_PIN_EXPECTED = {
    "first_pin_read_only_session": "SESSION_READ_ONLY",
    "first_pin_nonempty_old": "PIN_INCORRECT",
    "first_pin_set_with_empty_old": "OK",
    "first_pin_now_needs_login": "USER_NOT_LOGGED_IN",
    "first_pin_login": "OK",
    "first_pin_usable_after_login": "OK",
}

OBJECTS = COMMON + """
p11.C_Initialize()
h = rw_session()
ro = p11.C_OpenSession(0, CKF_SERIAL_SESSION)
cert_pem = open("ec_cert.pem", "rb").read()
def cert_t(**extra):
    t = [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509), (CKA_TOKEN, True),
         (CKA_LABEL, b"c"), (CKA_VALUE, cert_pem)]
    for a, v in extra.items():
        t = replaced(t, globals()["CKA_" + a], v)
    return t
ec_t = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_TOKEN, True),
        (CKA_LABEL, b"e"), (CKA_EC_PARAMS, P256), (CKA_VALUE, b"\\x22" * 32)]
rsa_t = rsa_template()
create = lambda t: p11.C_CreateObject(h, t)
rec("create_without_class", create, without(ec_t, CKA_CLASS))
rec("create_ec_without_value", create, without(ec_t, CKA_VALUE))
rec("create_ec_without_key_type", create, without(ec_t, CKA_KEY_TYPE))
rec("create_rsa_without_prime_2", create, without(rsa_t, CKA_PRIME_2))
rec("create_cert_without_value", create, without(cert_t(), CKA_VALUE))
rec("create_cert_without_certificate_type", create, without(cert_t(), CKA_CERTIFICATE_TYPE))
rec("create_unknown_attribute", create, ec_t + [(0x9999, b"?")])
rec("create_attribute_of_another_key_type", create, ec_t + [(CKA_MODULUS, b"\\x01")])
rec("create_attribute_type_not_int", create, ec_t + [("label", b"?")])
rec("create_label_as_str", create, replaced(ec_t, CKA_LABEL, "e"))
rec("create_token_as_int", create, replaced(ec_t, CKA_TOKEN, 1))
rec("create_class_as_bytes", create, replaced(ec_t, CKA_CLASS, b"\\x03"))
rec("create_label_33_bytes", create, replaced(ec_t, CKA_LABEL, b"L" * 33))
rec("create_label_32_bytes", create, replaced(ec_t, CKA_LABEL, b"L" * 32))
rec("create_secret_key_class", create, replaced(ec_t, CKA_CLASS, CKO_SECRET_KEY))
rec("create_dsa_key_type", create, replaced(ec_t, CKA_KEY_TYPE, CKK_DSA))
rec("create_ec_p384", create, replaced(ec_t, CKA_EC_PARAMS, b"\\x06\\x05\\x2b\\x81\\x04\\x00\\x22"))
rec("create_ec_params_garbage", create, replaced(ec_t, CKA_EC_PARAMS, b"\\x30\\x00"))
rec("create_ec_value_zero", create, replaced(ec_t, CKA_VALUE, bytes(32)))
rec("create_ec_value_33_bytes", create, replaced(ec_t, CKA_VALUE, b"\\x01" * 33))
rec("create_ec_wrong_ec_point", create, ec_t + [(CKA_EC_POINT, b"\\x04\\x41\\x04" + bytes(64))])
rec("create_rsa_1024", create, replaced(rsa_t, CKA_MODULUS, b"\\xc1" * 128))
rec("create_rsa_primes_mismatch", create, replaced(rsa_t, CKA_PRIME_1, b"\\x0b" * 128))
rec("create_duplicate_attribute", create, ec_t + [(CKA_LABEL, b"again")])
rec("create_read_only_attribute", create, ec_t + [(CKA_LOCAL, True)])
rec("create_always_sensitive", create, ec_t + [(CKA_ALWAYS_SENSITIVE, True)])
rec("create_template_not_a_list", create, 42)
rec("create_template_item_not_a_pair", create, [CKA_CLASS])
rec("create_cert_garbage", create, cert_t(VALUE=b"\\x30\\x03\\x02\\x01\\x01"))
rec("create_cert_subject_mismatch", create, cert_t(SUBJECT=b"\\x30\\x00"))
rec("create_cert_not_x509", create, cert_t(CERTIFICATE_TYPE=CKC_WTLS))
rec("create_cert", create, cert_t())
rec("create_public_key_bad_point", create,
    [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_EC_PARAMS, P256),
     (CKA_EC_POINT, b"\\x04\\x41\\x04" + b"\\x01" * 64)])
rec("create_token_object_read_only_session", p11.C_CreateObject, ro, ec_t)
rec("create_session_object_read_only_session", p11.C_CreateObject, ro, replaced(ec_t, CKA_TOKEN, False))
rec("create_rsa", create, rsa_t)
rec("create_data_object", create, [(CKA_CLASS, CKO_DATA), (CKA_TOKEN, True), (CKA_LABEL, b"d"),
                                   (CKA_APPLICATION, b"app"), (CKA_VALUE, b"payload")])

# C_GetAttributeValue
ec = ec_key(h, b"ec")
rsa = p11.C_CreateObject(h, rsa_t)
def get(obj, types):
    try:
        return ["OK", p11.C_GetAttributeValue(h, obj, types)]
    except errors.PKCS11Error as e:
        return [errors.name(e.rv), e.values]
R["get_ec_value"] = get(ec, [CKA_LABEL, CKA_VALUE, CKA_EC_PARAMS])
R["get_rsa_value_not_an_attribute"] = get(rsa, [CKA_VALUE])[0]
R["get_rsa_private_exponent"] = get(rsa, [CKA_PRIVATE_EXPONENT])[0]
R["get_rsa_primes"] = get(rsa, [CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT])
R["get_unknown_attribute"] = get(ec, [CKA_LABEL, 0x9999])
R["get_defaults"] = get(ec, [CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_PRIVATE, CKA_SIGN, CKA_ALWAYS_SENSITIVE,
                             CKA_NEVER_EXTRACTABLE, CKA_LOCAL, CKA_KEY_GEN_MECHANISM])
R["get_ec_point_of_private_key"] = len(p11.C_GetAttributeValue(h, ec, [CKA_EC_POINT])[0])
loose = ec_key(h, b"loose", SENSITIVE=False, EXTRACTABLE=True)
R["get_value_not_sensitive_and_extractable"] = get(loose, [CKA_VALUE])[0]
half = ec_key(h, b"half", SENSITIVE=False)
R["get_value_not_sensitive_but_not_extractable"] = get(half, [CKA_VALUE])[0]
R["get_types_not_a_list"] = ckr(p11.C_GetAttributeValue, h, ec, CKA_LABEL)
rec("get_unknown_object", p11.C_GetAttributeValue, h, 9999, [CKA_LABEL])

# C_SetAttributeValue
setattr_ = lambda obj, t: p11.C_SetAttributeValue(h, obj, t)
rec("set_sensitive_true_to_false", setattr_, ec, [(CKA_SENSITIVE, False)])
rec("set_sensitive_false_to_true", setattr_, loose, [(CKA_SENSITIVE, True)])
R["always_sensitive_kept_false"] = get(loose, [CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE])[1]
rec("set_extractable_false_to_true", setattr_, ec, [(CKA_EXTRACTABLE, True)])
rec("set_extractable_true_to_false", setattr_, loose, [(CKA_EXTRACTABLE, False)])
R["never_extractable_kept_false"] = get(loose, [CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE])[1]
rec("set_class", setattr_, ec, [(CKA_CLASS, CKO_DATA)])
rec("set_key_value", setattr_, ec, [(CKA_VALUE, b"\\x33" * 32)])
rec("set_local", setattr_, ec, [(CKA_LOCAL, True)])
rec("set_unknown_attribute", setattr_, ec, [(0x9999, b"")])
rec("set_label_too_long", setattr_, ec, [(CKA_LABEL, b"x" * 40)])
rec("set_label_and_bad_type", setattr_, ec, [(CKA_LABEL, b"changed"), (CKA_SIGN, 1)])
R["label_unchanged_after_failed_set"] = get(ec, [CKA_LABEL])[1][0]
rec("set_label", setattr_, ec, [(CKA_LABEL, b"renamed"), (CKA_ID, b"\\x01")])
R["label_after_set"] = get(ec, [CKA_LABEL, CKA_ID])[1]
rec("set_on_read_only_session", p11.C_SetAttributeValue, ro, ec, [(CKA_LABEL, b"ro")])
rec("set_unknown_object", setattr_, 9999, [(CKA_LABEL, b"x")])
fixed = ec_key(h, b"fixed", MODIFIABLE=False, DESTROYABLE=False)
rec("set_not_modifiable", setattr_, fixed, [(CKA_LABEL, b"x")])
rec("destroy_not_destroyable", p11.C_DestroyObject, h, fixed)
rec("destroy_read_only_session", p11.C_DestroyObject, ro, ec)
rec("destroy_unknown_object", p11.C_DestroyObject, h, 9999)
rec("destroy", p11.C_DestroyObject, h, loose)
rec("destroy_twice", p11.C_DestroyObject, h, loose)

# C_FindObjects*
rec("find_without_init", p11.C_FindObjects, h, 1)
rec("find_final_without_init", p11.C_FindObjectsFinal, h)
p11.C_FindObjectsInit(h, [(CKA_CLASS, CKO_PRIVATE_KEY)])
rec("find_init_twice", p11.C_FindObjectsInit, h, [])
a = p11.C_FindObjects(h, 1)
b = p11.C_FindObjects(h, 100)
c = p11.C_FindObjects(h, 100)
R["find_in_parts"] = [len(a), len(b) >= 3, len(c), len(set(a + b)) == len(a + b)]
p11.C_FindObjectsFinal(h)
rec("find_template_bad_value_type", p11.C_FindObjectsInit, h, [(CKA_LABEL, 1.5)])
p11.C_FindObjectsInit(h, [(CKA_VALUE, b"\\x11" * 32)])
R["find_by_secret_value"] = p11.C_FindObjects(h, 10)
p11.C_FindObjectsFinal(h)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"L" * 32)])
R["find_by_label"] = len(p11.C_FindObjects(h, 10))
p11.C_FindObjectsFinal(h)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"L" * 31)])
R["find_by_label_prefix"] = len(p11.C_FindObjects(h, 10))
p11.C_FindObjectsFinal(h)
p11.C_Finalize()
""" + DONE

OBJECTS_EXPECTED = {
    "create_without_class": "TEMPLATE_INCOMPLETE",
    "create_ec_without_value": "TEMPLATE_INCOMPLETE",
    "create_ec_without_key_type": "TEMPLATE_INCOMPLETE",
    "create_rsa_without_prime_2": "TEMPLATE_INCOMPLETE",
    "create_cert_without_value": "TEMPLATE_INCOMPLETE",
    "create_cert_without_certificate_type": "TEMPLATE_INCOMPLETE",
    "create_unknown_attribute": "ATTRIBUTE_TYPE_INVALID",
    "create_attribute_of_another_key_type": "ATTRIBUTE_TYPE_INVALID",
    "create_attribute_type_not_int": "ATTRIBUTE_TYPE_INVALID",
    "create_label_as_str": "ATTRIBUTE_VALUE_INVALID",
    "create_token_as_int": "ATTRIBUTE_VALUE_INVALID",
    "create_class_as_bytes": "ATTRIBUTE_VALUE_INVALID",
    "create_label_33_bytes": "ATTRIBUTE_VALUE_INVALID",
    "create_label_32_bytes": "OK",
    "create_secret_key_class": "ATTRIBUTE_VALUE_INVALID",
    "create_dsa_key_type": "ATTRIBUTE_VALUE_INVALID",
    "create_ec_p384": "CURVE_NOT_SUPPORTED",
    "create_ec_params_garbage": "ATTRIBUTE_VALUE_INVALID",
    "create_ec_value_zero": "ATTRIBUTE_VALUE_INVALID",
    "create_ec_value_33_bytes": "ATTRIBUTE_VALUE_INVALID",
    "create_ec_wrong_ec_point": "TEMPLATE_INCONSISTENT",
    "create_rsa_1024": "ATTRIBUTE_VALUE_INVALID",
    "create_rsa_primes_mismatch": "TEMPLATE_INCONSISTENT",
    "create_duplicate_attribute": "TEMPLATE_INCONSISTENT",
    "create_read_only_attribute": "ATTRIBUTE_READ_ONLY",
    "create_always_sensitive": "ATTRIBUTE_READ_ONLY",
    "create_template_not_a_list": "ARGUMENTS_BAD",
    "create_template_item_not_a_pair": "ARGUMENTS_BAD",
    "create_cert_garbage": "ATTRIBUTE_VALUE_INVALID",
    "create_cert_subject_mismatch": "OK",  # stored as given (issue 11: FreeRTOS passes b"TestSubject")
    "create_cert_not_x509": "ATTRIBUTE_VALUE_INVALID",
    "create_cert": "OK",
    "create_public_key_bad_point": "ATTRIBUTE_VALUE_INVALID",
    "create_token_object_read_only_session": "SESSION_READ_ONLY",
    "create_session_object_read_only_session": "OK",
    "create_rsa": "OK",
    "create_data_object": "OK",
    "get_ec_value": ["ATTRIBUTE_SENSITIVE", [b"ec", None, bytes.fromhex("06082a8648ce3d030107")]],
    "get_rsa_value_not_an_attribute": "ATTRIBUTE_TYPE_INVALID",
    "get_rsa_private_exponent": "ATTRIBUTE_SENSITIVE",
    "get_rsa_primes": ["ATTRIBUTE_SENSITIVE", [None, None, None, None, None]],
    "get_unknown_attribute": ["ATTRIBUTE_TYPE_INVALID", [b"ec", None]],
    "get_defaults": ["OK", [True, False, True, True, False, False, False, 0xFFFFFFFF]],
    "get_ec_point_of_private_key": 67,
    "get_value_not_sensitive_and_extractable": "OK",
    "get_value_not_sensitive_but_not_extractable": "ATTRIBUTE_SENSITIVE",
    "get_types_not_a_list": "ARGUMENTS_BAD",
    "get_unknown_object": "OBJECT_HANDLE_INVALID",
    "set_sensitive_true_to_false": "ATTRIBUTE_READ_ONLY",
    "set_sensitive_false_to_true": "OK",
    "always_sensitive_kept_false": [True, False],
    "set_extractable_false_to_true": "ATTRIBUTE_READ_ONLY",
    "set_extractable_true_to_false": "OK",
    "never_extractable_kept_false": [False, False],
    "set_class": "ATTRIBUTE_READ_ONLY",
    "set_key_value": "ATTRIBUTE_READ_ONLY",
    "set_local": "ATTRIBUTE_READ_ONLY",
    "set_unknown_attribute": "ATTRIBUTE_TYPE_INVALID",
    "set_label_too_long": "ATTRIBUTE_VALUE_INVALID",
    "set_label_and_bad_type": "ATTRIBUTE_VALUE_INVALID",
    "label_unchanged_after_failed_set": b"ec",
    "set_label": "OK",
    "label_after_set": [b"renamed", b"\x01"],
    "set_on_read_only_session": "SESSION_READ_ONLY",
    "set_unknown_object": "OBJECT_HANDLE_INVALID",
    "set_not_modifiable": "ACTION_PROHIBITED",
    "destroy_not_destroyable": "ACTION_PROHIBITED",
    "destroy_read_only_session": "SESSION_READ_ONLY",
    "destroy_unknown_object": "OBJECT_HANDLE_INVALID",
    "destroy": "OK",
    "destroy_twice": "OBJECT_HANDLE_INVALID",
    "find_without_init": "OPERATION_NOT_INITIALIZED",
    "find_final_without_init": "OPERATION_NOT_INITIALIZED",
    "find_init_twice": "OPERATION_ACTIVE",
    "find_in_parts": [1, True, 0, True],
    "find_template_bad_value_type": "ATTRIBUTE_VALUE_INVALID",
    "find_by_secret_value": [],
    "find_by_label": 1,
    "find_by_label_prefix": 0,
}

OPERATIONS = COMMON + """
import hashlib
p11.C_Initialize()
h = rw_session()
ec = ec_key(h, b"ec")
rsa = p11.C_CreateObject(h, rsa_template())
pub = ec_pub(h, b"pub")
nosign = ec_key(h, b"nosign", SIGN=False)
noverify = ec_pub(h, b"noverify", VERIFY=False)
cert = p11.C_CreateObject(h, [(CKA_CLASS, CKO_CERTIFICATE), (CKA_CERTIFICATE_TYPE, CKC_X_509),
                              (CKA_VALUE, open("ec_cert.pem", "rb").read())])
D = hashlib.sha256(b"m").digest()
def after(name):
    # which operation is active now?  (C_Sign on a fresh hash; then reset)
    R[name] = ckr(p11.C_Sign, h, D)
rec("sign_without_init", p11.C_Sign, h, D)
rec("sign_final_without_init", p11.C_SignFinal, h)
rec("sign_init_mechanism_0x253", p11.C_SignInit, h, 0x253, ec)
rec("sign_init_digest_mechanism", p11.C_SignInit, h, CKM_SHA256, ec)
rec("sign_init_keygen_mechanism", p11.C_SignInit, h, CKM_EC_KEY_PAIR_GEN, ec)
rec("sign_init_mechanism_not_int", p11.C_SignInit, h, "ECDSA", ec)
rec("sign_init_ecdsa_with_param", p11.C_SignInit, h, (CKM_ECDSA, b"\\x00"), ec)
rec("sign_init_ec_key_rsa_mechanism", p11.C_SignInit, h, CKM_RSA_PKCS, ec)
rec("sign_init_rsa_key_ecdsa", p11.C_SignInit, h, CKM_ECDSA, rsa)
rec("sign_init_public_key", p11.C_SignInit, h, CKM_ECDSA, pub)
rec("sign_init_certificate", p11.C_SignInit, h, CKM_ECDSA, cert)
rec("sign_init_unknown_key", p11.C_SignInit, h, CKM_ECDSA, 9999)
rec("sign_init_sign_false", p11.C_SignInit, h, CKM_ECDSA, nosign)
rec("pss_without_param", p11.C_SignInit, h, CKM_RSA_PKCS_PSS, rsa)
rec("pss_param_not_a_tuple", p11.C_SignInit, h, (CKM_RSA_PKCS_PSS, 32), rsa)
rec("pss_mgf_mismatch", p11.C_SignInit, h, (CKM_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA1, 32)), rsa)
rec("pss_unknown_hash", p11.C_SignInit, h, (CKM_RSA_PKCS_PSS, (0x253, CKG_MGF1_SHA256, 32)), rsa)
rec("pss_hash_disagrees_with_mechanism", p11.C_SignInit, h,
    (CKM_SHA256_RSA_PKCS_PSS, (CKM_SHA384, CKG_MGF1_SHA384, 48)), rsa)
rec("pss_salt_too_long", p11.C_SignInit, h, (CKM_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA256, 223)), rsa)
rec("pss_negative_salt", p11.C_SignInit, h, (CKM_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA256, -1)), rsa)
after("no_operation_after_failed_inits")
rec("sign_init", p11.C_SignInit, h, CKM_ECDSA, ec)
rec("sign_init_twice", p11.C_SignInit, h, CKM_ECDSA, ec)
rec("digest_init_while_signing", p11.C_DigestInit, h, CKM_SHA256)
rec("verify_while_signing", p11.C_Verify, h, D, bytes(64))
R["length_query"] = p11.C_Sign(h, D, length_only=True)
buf = bytearray(10)
try:
    p11.C_Sign(h, D, buf)
except errors.PKCS11Error as e:
    R["buffer_too_small"] = [errors.name(e.rv), e.length]
rec("sign_output_into_bytes", p11.C_Sign, h, D, b"\\x00" * 64)
after("sign_after_bytes_output")
p11.C_SignInit(h, CKM_ECDSA, ec)
rec("sign_output_into_read_only_memoryview", p11.C_Sign, h, D, memoryview(b"\\x00" * 64))
after("sign_after_arguments_bad")
p11.C_SignInit(h, CKM_ECDSA, ec)
buf = bytearray(70)
R["sign_into_buffer"] = p11.C_Sign(h, D, buf)
after("sign_after_success")
p11.C_SignInit(h, CKM_ECDSA, ec)
rec("ecdsa_19_bytes", p11.C_Sign, h, b"x" * 19)
after("sign_after_data_len_range")
p11.C_SignInit(h, CKM_ECDSA, ec)
rec("ecdsa_65_bytes", p11.C_Sign, h, b"x" * 65)
p11.C_SignInit(h, CKM_ECDSA, ec)
rec("ecdsa_20_bytes", p11.C_Sign, h, b"x" * 20)
p11.C_SignInit(h, CKM_ECDSA, ec)
rec("ecdsa_64_bytes", p11.C_Sign, h, b"x" * 64)
p11.C_SignInit(h, CKM_ECDSA, ec)
rec("sign_data_not_bytes", p11.C_Sign, h, "text")
p11.C_SignInit(h, CKM_RSA_PKCS, rsa)
rec("rsa_pkcs_246_bytes", p11.C_Sign, h, b"x" * 246)
p11.C_SignInit(h, CKM_RSA_PKCS, rsa)
rec("rsa_pkcs_245_bytes", p11.C_Sign, h, b"x" * 245)
p11.C_SignInit(h, (CKM_RSA_PKCS_PSS, (CKM_SHA256, CKG_MGF1_SHA256, 32)), rsa)
rec("pss_raw_wrong_hash_length", p11.C_Sign, h, b"x" * 20)
p11.C_SignInit(h, CKM_ECDSA, ec)
rec("sign_update_raw_mechanism", p11.C_SignUpdate, h, b"x")
after("sign_after_update_refused")
p11.C_SignInit(h, CKM_ECDSA_SHA256, ec)
p11.C_SignUpdate(h, b"part")
rec("single_part_sign_during_multi_part", p11.C_Sign, h, b"x")
R["sign_final_length_query"] = p11.C_SignFinal(h, length_only=True)
rec("sign_final", p11.C_SignFinal, h)
after("sign_after_final")

# verify
p11.C_SignInit(h, CKM_ECDSA, ec)
sig = p11.C_Sign(h, D)
rec("verify_without_init", p11.C_Verify, h, D, sig)
rec("verify_init_private_key", p11.C_VerifyInit, h, CKM_ECDSA, ec)
rec("verify_init_verify_false", p11.C_VerifyInit, h, CKM_ECDSA, noverify)
rec("verify_init_unknown_mechanism", p11.C_VerifyInit, h, 0x253, pub)
rec("verify_init_unknown_key", p11.C_VerifyInit, h, CKM_ECDSA, 9999)
p11.C_VerifyInit(h, CKM_ECDSA, pub)
rec("verify_good", p11.C_Verify, h, D, sig)
rec("verify_after_verify", p11.C_Verify, h, D, sig)
p11.C_VerifyInit(h, CKM_ECDSA, pub)
rec("verify_bad_signature", p11.C_Verify, h, D, sig[:-1] + bytes([sig[-1] ^ 1]))
p11.C_VerifyInit(h, CKM_ECDSA, pub)
rec("verify_short_signature", p11.C_Verify, h, D, sig[:63])
p11.C_VerifyInit(h, CKM_ECDSA, pub)
rec("verify_wrong_data", p11.C_Verify, h, hashlib.sha256(b"n").digest(), sig)
p11.C_VerifyInit(h, CKM_ECDSA_SHA256, pub)
p11.C_VerifyUpdate(h, b"m")
rec("verify_multi_part", p11.C_VerifyFinal, h, sig)
rec("verify_final_without_init", p11.C_VerifyFinal, h, sig)

# digest
rec("digest_without_init", p11.C_Digest, h, b"x")
rec("digest_final_without_init", p11.C_DigestFinal, h)
rec("digest_init_sign_mechanism", p11.C_DigestInit, h, CKM_ECDSA)
rec("digest_init_unknown_mechanism", p11.C_DigestInit, h, 0x253)
rec("digest_init_after_failed_init", p11.C_DigestInit, h, CKM_SHA256)
R["digest_length_query"] = p11.C_Digest(h, b"abc", length_only=True)
try:
    p11.C_Digest(h, b"abc", bytearray(31))
except errors.PKCS11Error as e:
    R["digest_buffer_too_small"] = [errors.name(e.rv), e.length]
R["digest"] = p11.C_Digest(h, b"abc").hex()
rec("digest_after_digest", p11.C_Digest, h, b"abc")
p11.C_DigestInit(h, CKM_SHA256)
p11.C_DigestUpdate(h, b"a")
p11.C_DigestUpdate(h, b"bc")
try:
    p11.C_DigestFinal(h, bytearray(5))
except errors.PKCS11Error as e:
    R["digest_final_too_small"] = errors.name(e.rv)
R["digest_multi_part"] = p11.C_DigestFinal(h).hex()

# key pair generation, random
gen = lambda mech, pt, kt: p11.C_GenerateKeyPair(h, mech, pt, kt)
rec("generate_rsa_key_pair", gen, CKM_RSA_PKCS_KEY_PAIR_GEN, [], [])
rec("generate_mechanism_0x253", gen, 0x253, [(CKA_EC_PARAMS, P256)], [])
rec("generate_with_param", gen, (CKM_EC_KEY_PAIR_GEN, 1), [(CKA_EC_PARAMS, P256)], [])
rec("generate_without_ec_params", gen, CKM_EC_KEY_PAIR_GEN, [], [])
rec("generate_p384", gen, CKM_EC_KEY_PAIR_GEN, [(CKA_EC_PARAMS, b"\\x06\\x05\\x2b\\x81\\x04\\x00\\x22")], [])
rec("generate_with_value", gen, CKM_EC_KEY_PAIR_GEN, [(CKA_EC_PARAMS, P256)], [(CKA_VALUE, b"\\x01" * 32)])
rec("generate_wrong_class", gen, CKM_EC_KEY_PAIR_GEN, [(CKA_EC_PARAMS, P256), (CKA_CLASS, CKO_PRIVATE_KEY)], [])
rec("generate_token_read_only_session", p11.C_GenerateKeyPair, p11.C_OpenSession(0, CKF_SERIAL_SESSION),
    CKM_EC_KEY_PAIR_GEN, [(CKA_EC_PARAMS, P256)], [(CKA_TOKEN, True)])
h2 = rw_session()
gpub, gpriv = p11.C_GenerateKeyPair(h2, CKM_EC_KEY_PAIR_GEN, [(CKA_EC_PARAMS, P256), (CKA_LABEL, b"g"),
                                                              (CKA_TOKEN, False)],
                                    [(CKA_TOKEN, True), (CKA_LABEL, b"g")])
R["generated_attrs"] = [p11.C_GetAttributeValue(h, gpub, [CKA_TOKEN, CKA_LOCAL, CKA_KEY_GEN_MECHANISM]),
                        p11.C_GetAttributeValue(h, gpriv, [CKA_TOKEN, CKA_LOCAL, CKA_ALWAYS_SENSITIVE,
                                                           CKA_NEVER_EXTRACTABLE, CKA_KEY_GEN_MECHANISM])]
p11.C_SignInit(h, CKM_ECDSA, gpriv)
gsig = p11.C_Sign(h, D)
p11.C_VerifyInit(h, CKM_ECDSA, gpub)
rec("generated_pair_verifies", p11.C_Verify, h, D, gsig)
p11.C_CloseSession(h2)
rec("generated_session_public_key_gone", p11.C_GetAttributeValue, h, gpub, [CKA_LABEL])
rec("generated_token_private_key_stays", p11.C_GetAttributeValue, h, gpriv, [CKA_LABEL])
rec("random_negative_length", p11.C_GenerateRandom, h, -1)
rec("random_length_not_int", p11.C_GenerateRandom, h, "8")
R["random_lengths"] = [len(p11.C_GenerateRandom(h, n)) for n in (0, 1, 32, 100)]
R["random_differs"] = p11.C_GenerateRandom(h, 16) != p11.C_GenerateRandom(h, 16)
rec("seed_random", p11.C_SeedRandom, h, b"seed")
p11.C_Finalize()
""" + DONE

OPERATIONS_EXPECTED = {
    "sign_without_init": "OPERATION_NOT_INITIALIZED",
    "sign_final_without_init": "OPERATION_NOT_INITIALIZED",
    "sign_init_mechanism_0x253": "MECHANISM_INVALID",
    "sign_init_digest_mechanism": "MECHANISM_INVALID",
    "sign_init_keygen_mechanism": "MECHANISM_INVALID",
    "sign_init_mechanism_not_int": "ARGUMENTS_BAD",
    "sign_init_ecdsa_with_param": "MECHANISM_PARAM_INVALID",
    "sign_init_ec_key_rsa_mechanism": "KEY_TYPE_INCONSISTENT",
    "sign_init_rsa_key_ecdsa": "KEY_TYPE_INCONSISTENT",
    "sign_init_public_key": "KEY_TYPE_INCONSISTENT",
    "sign_init_certificate": "KEY_HANDLE_INVALID",
    "sign_init_unknown_key": "KEY_HANDLE_INVALID",
    "sign_init_sign_false": "KEY_FUNCTION_NOT_PERMITTED",
    "pss_without_param": "MECHANISM_PARAM_INVALID",
    "pss_param_not_a_tuple": "MECHANISM_PARAM_INVALID",
    "pss_mgf_mismatch": "MECHANISM_PARAM_INVALID",
    "pss_unknown_hash": "MECHANISM_PARAM_INVALID",
    "pss_hash_disagrees_with_mechanism": "MECHANISM_PARAM_INVALID",
    "pss_salt_too_long": "MECHANISM_PARAM_INVALID",
    "pss_negative_salt": "MECHANISM_PARAM_INVALID",
    "no_operation_after_failed_inits": "OPERATION_NOT_INITIALIZED",
    "sign_init": "OK",
    "sign_init_twice": "OPERATION_ACTIVE",
    "digest_init_while_signing": "OPERATION_ACTIVE",
    "verify_while_signing": "OPERATION_NOT_INITIALIZED",
    "length_query": 64,
    "buffer_too_small": ["BUFFER_TOO_SMALL", 64],
    "sign_output_into_bytes": "ARGUMENTS_BAD",
    "sign_after_bytes_output": "OPERATION_NOT_INITIALIZED",
    "sign_output_into_read_only_memoryview": "ARGUMENTS_BAD",
    "sign_after_arguments_bad": "OPERATION_NOT_INITIALIZED",
    "sign_into_buffer": 64,
    "sign_after_success": "OPERATION_NOT_INITIALIZED",
    "ecdsa_19_bytes": "DATA_LEN_RANGE",
    "sign_after_data_len_range": "OPERATION_NOT_INITIALIZED",
    "ecdsa_65_bytes": "DATA_LEN_RANGE",
    "ecdsa_20_bytes": "OK",
    "ecdsa_64_bytes": "OK",
    "sign_data_not_bytes": "ARGUMENTS_BAD",
    "rsa_pkcs_246_bytes": "DATA_LEN_RANGE",
    "rsa_pkcs_245_bytes": "OK",
    "pss_raw_wrong_hash_length": "DATA_LEN_RANGE",
    "sign_update_raw_mechanism": "FUNCTION_NOT_SUPPORTED",
    "sign_after_update_refused": "OPERATION_NOT_INITIALIZED",
    "single_part_sign_during_multi_part": "OPERATION_ACTIVE",
    "sign_final_length_query": 64,
    "sign_final": "OK",
    "sign_after_final": "OPERATION_NOT_INITIALIZED",
    "verify_without_init": "OPERATION_NOT_INITIALIZED",
    "verify_init_private_key": "KEY_TYPE_INCONSISTENT",
    "verify_init_verify_false": "KEY_FUNCTION_NOT_PERMITTED",
    "verify_init_unknown_mechanism": "MECHANISM_INVALID",
    "verify_init_unknown_key": "KEY_HANDLE_INVALID",
    "verify_good": "OK",
    "verify_after_verify": "OPERATION_NOT_INITIALIZED",
    "verify_bad_signature": "SIGNATURE_INVALID",
    "verify_short_signature": "SIGNATURE_LEN_RANGE",
    "verify_wrong_data": "SIGNATURE_INVALID",
    "verify_multi_part": "OK",
    "verify_final_without_init": "OPERATION_NOT_INITIALIZED",
    "digest_without_init": "OPERATION_NOT_INITIALIZED",
    "digest_final_without_init": "OPERATION_NOT_INITIALIZED",
    "digest_init_sign_mechanism": "MECHANISM_INVALID",
    "digest_init_unknown_mechanism": "MECHANISM_INVALID",
    "digest_init_after_failed_init": "OK",
    "digest_length_query": 32,
    "digest_buffer_too_small": ["BUFFER_TOO_SMALL", 32],
    "digest": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "digest_after_digest": "OPERATION_NOT_INITIALIZED",
    "digest_final_too_small": "BUFFER_TOO_SMALL",
    "digest_multi_part": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "generate_rsa_key_pair": "MECHANISM_INVALID",
    "generate_mechanism_0x253": "MECHANISM_INVALID",
    "generate_with_param": "MECHANISM_PARAM_INVALID",
    "generate_without_ec_params": "TEMPLATE_INCOMPLETE",
    "generate_p384": "CURVE_NOT_SUPPORTED",
    "generate_with_value": "TEMPLATE_INCONSISTENT",
    "generate_wrong_class": "TEMPLATE_INCONSISTENT",
    "generate_token_read_only_session": "SESSION_READ_ONLY",
    "generated_attrs": [[False, True, 0x1040], [True, True, True, True, 0x1040]],
    "generated_pair_verifies": "OK",
    "generated_session_public_key_gone": "OBJECT_HANDLE_INVALID",
    "generated_token_private_key_stays": "OK",
    "random_negative_length": "ARGUMENTS_BAD",
    "random_length_not_int": "ARGUMENTS_BAD",
    "random_lengths": [0, 1, 32, 100],
    "random_differs": True,
    "seed_random": "RANDOM_SEED_NOT_SUPPORTED",
}

GROUPS = {
    "lifecycle": (LIFECYCLE, LIFECYCLE_EXPECTED),
    "login": (LOGIN, LOGIN_EXPECTED),
    "first_pin": (FIRST_PIN, FIRST_PIN_EXPECTED),
    "objects": (OBJECTS, OBJECTS_EXPECTED),
    "operations": (OPERATIONS, OPERATIONS_EXPECTED),
}


class _Groups:
    """Runs a group's script on first request (fresh token each) and keeps the
    results; a crash in one group only fails that group's cases."""

    def __init__(self, factory: pytest.TempPathFactory, keys: TokenKeys) -> None:
        self.factory = factory
        self.keys = keys
        self.done: dict[str, dict | Exception] = {}

    def __getitem__(self, name: str) -> dict:
        if name not in self.done:
            base = self.factory.mktemp(f"ckr-{name}")
            (base / "token").mkdir()
            (base / "work").mkdir()
            fw = UnixFirmware(token_dir=base / "token", work_dir=base / "work")
            self.keys.copy_to(fw.work_dir)
            try:
                self.done[name] = last_json(fw.run(GROUPS[name][0]))
            except Exception as e:  # reported by every case of the group
                self.done[name] = e
        r = self.done[name]
        if isinstance(r, Exception):
            raise r
        return r


@pytest.fixture(scope="module")
def group_results(tmp_path_factory: pytest.TempPathFactory, token_keys: TokenKeys) -> _Groups:
    if not UNIX_BIN.exists():
        pytest.fail(f"{UNIX_BIN} is missing: run `make unix` first")
    return _Groups(tmp_path_factory, token_keys)


def _normalize(v):
    """Expected values as the snippet reports them (bytes as hex)."""
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [_normalize(x) for x in v]
    return v


CASES = [(g, case, exp) for g, (_, cases) in GROUPS.items() for case, exp in cases.items()]


@pytest.mark.parametrize("group, case, expected", CASES, ids=[f"{g}-{c}" for g, c, _ in CASES])
def test_ckr(group_results: _Groups, group: str, case: str, expected) -> None:
    got = group_results[group].get(case, "<case did not run>")
    expected = _normalize(expected)
    assert got == expected, f"{group}/{case}: expected {expected!r}, got {got!r}"


def test_every_case_ran(group_results: _Groups) -> None:
    for group, (_, cases) in GROUPS.items():
        extra = set(group_results[group]) - set(cases)
        assert not extra, f"{group}: results without an expectation: {sorted(extra)}"
