# test_token_ckr.py, group objects: R[case] = "OK" or the CKR name
# (runs after p11_prelude and ckr_common; ckr_done prints R).
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
        (CKA_LABEL, b"e"), (CKA_EC_PARAMS, P256), (CKA_VALUE, b"\x22" * 32)]
rsa_t = rsa_template()
create = lambda t: p11.C_CreateObject(h, t)
rec("create_without_class", create, without(ec_t, CKA_CLASS))
rec("create_ec_without_value", create, without(ec_t, CKA_VALUE))
rec("create_ec_without_key_type", create, without(ec_t, CKA_KEY_TYPE))
rec("create_rsa_without_prime_2", create, without(rsa_t, CKA_PRIME_2))
rec("create_cert_without_value", create, without(cert_t(), CKA_VALUE))
rec("create_cert_without_certificate_type", create, without(cert_t(), CKA_CERTIFICATE_TYPE))
rec("create_unknown_attribute", create, ec_t + [(0x9999, b"?")])
rec("create_attribute_of_another_key_type", create, ec_t + [(CKA_MODULUS, b"\x01")])
rec("create_attribute_type_not_int", create, ec_t + [("label", b"?")])
rec("create_label_as_str", create, replaced(ec_t, CKA_LABEL, "e"))
rec("create_token_as_int", create, replaced(ec_t, CKA_TOKEN, 1))
rec("create_class_as_bytes", create, replaced(ec_t, CKA_CLASS, b"\x03"))
rec("create_label_33_bytes", create, replaced(ec_t, CKA_LABEL, b"L" * 33))
rec("create_label_32_bytes", create, replaced(ec_t, CKA_LABEL, b"L" * 32))
rec("create_secret_key_class", create, replaced(ec_t, CKA_CLASS, CKO_SECRET_KEY))
rec("create_dsa_key_type", create, replaced(ec_t, CKA_KEY_TYPE, CKK_DSA))
rec("create_ec_p384", create, replaced(ec_t, CKA_EC_PARAMS, b"\x06\x05\x2b\x81\x04\x00\x22"))
rec("create_ec_params_garbage", create, replaced(ec_t, CKA_EC_PARAMS, b"\x30\x00"))
rec("create_ec_value_zero", create, replaced(ec_t, CKA_VALUE, bytes(32)))
rec("create_ec_value_33_bytes", create, replaced(ec_t, CKA_VALUE, b"\x01" * 33))
rec("create_ec_wrong_ec_point", create, ec_t + [(CKA_EC_POINT, b"\x04\x41\x04" + bytes(64))])
rec("create_rsa_1024", create, replaced(rsa_t, CKA_MODULUS, b"\xc1" * 128))
rec("create_rsa_primes_mismatch", create, replaced(rsa_t, CKA_PRIME_1, b"\x0b" * 128))
rec("create_duplicate_attribute", create, ec_t + [(CKA_LABEL, b"again")])
rec("create_read_only_attribute", create, ec_t + [(CKA_LOCAL, True)])
rec("create_always_sensitive", create, ec_t + [(CKA_ALWAYS_SENSITIVE, True)])
rec("create_template_not_a_list", create, 42)
rec("create_template_item_not_a_pair", create, [CKA_CLASS])
rec("create_cert_garbage", create, cert_t(VALUE=b"\x30\x03\x02\x01\x01"))
rec("create_cert_subject_mismatch", create, cert_t(SUBJECT=b"\x30\x00"))
rec("create_cert_not_x509", create, cert_t(CERTIFICATE_TYPE=CKC_WTLS))
rec("create_cert", create, cert_t())
rec("create_public_key_bad_point", create,
    [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_EC_PARAMS, P256),
     (CKA_EC_POINT, b"\x04\x41\x04" + b"\x01" * 64)])
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
rec("set_key_value", setattr_, ec, [(CKA_VALUE, b"\x33" * 32)])
rec("set_local", setattr_, ec, [(CKA_LOCAL, True)])
rec("set_unknown_attribute", setattr_, ec, [(0x9999, b"")])
rec("set_label_too_long", setattr_, ec, [(CKA_LABEL, b"x" * 40)])
rec("set_label_and_bad_type", setattr_, ec, [(CKA_LABEL, b"changed"), (CKA_SIGN, 1)])
R["label_unchanged_after_failed_set"] = get(ec, [CKA_LABEL])[1][0]
rec("set_label", setattr_, ec, [(CKA_LABEL, b"renamed"), (CKA_ID, b"\x01")])
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
p11.C_FindObjectsInit(h, [(CKA_VALUE, b"\x11" * 32)])
R["find_by_secret_value"] = p11.C_FindObjects(h, 10)
p11.C_FindObjectsFinal(h)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"L" * 32)])
R["find_by_label"] = len(p11.C_FindObjects(h, 10))
p11.C_FindObjectsFinal(h)
p11.C_FindObjectsInit(h, [(CKA_LABEL, b"L" * 31)])
R["find_by_label_prefix"] = len(p11.C_FindObjects(h, 10))
p11.C_FindObjectsFinal(h)
p11.C_Finalize()
