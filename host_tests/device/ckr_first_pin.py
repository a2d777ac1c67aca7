# test_token_ckr.py, group first_pin: R[case] = "OK" or the CKR name
# (runs after p11_prelude and ckr_common; ckr_done prints R).
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
