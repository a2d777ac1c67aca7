"""Every CKR path of the token: each case calls the API on the unix firmware
and checks the return code.  The cases of one group run in one firmware
process (fast); each case is its own test item."""

from __future__ import annotations

import pytest

from harness.device_json import snippet
from harness.token_files import P11_PRELUDE, TokenKeys, last_json
from harness.unix import UNIX_BIN, UnixFirmware

# Shared by the groups (host_tests/device/ckr_*.py): R collects case -> "OK" / CKR name;
# ckr_done prints R as JSON.
COMMON = P11_PRELUDE + snippet("ckr_common")
DONE = snippet("ckr_done")

LIFECYCLE = COMMON + snippet("ckr_lifecycle") + DONE

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

LOGIN = COMMON + snippet("ckr_login") + DONE

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

FIRST_PIN = COMMON + snippet("ckr_first_pin") + DONE

FIRST_PIN_EXPECTED = {
    "first_pin_read_only_session": "SESSION_READ_ONLY",
    "first_pin_nonempty_old": "PIN_INCORRECT",
    "first_pin_set_with_empty_old": "OK",
    "first_pin_now_needs_login": "USER_NOT_LOGGED_IN",
    "first_pin_login": "OK",
    "first_pin_usable_after_login": "OK",
}

OBJECTS = COMMON + snippet("ckr_objects") + DONE

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

OPERATIONS = COMMON + snippet("ckr_operations") + DONE

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
