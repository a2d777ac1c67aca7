# _pkcs11: the token's crypto core (CMake-based ports: esp32).
add_library(usermod_pkcs11 INTERFACE)

target_sources(usermod_pkcs11 INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modpkcs11.c
)

target_include_directories(usermod_pkcs11 INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_pkcs11)

# TLS client authentication through the token (tls_sign_hook.c, module _p11tls).
# --undefined keeps the linker from skipping the file that holds the __wrap_
# function (see ports/esp32/esp32_common.cmake for the same pattern).
target_sources(usermod_pkcs11 INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/tls_sign_hook.c
)
target_link_options(usermod_pkcs11 INTERFACE
    -Wl,--undefined=__wrap_mbedtls_pk_sign_restartable
    -Wl,--wrap=mbedtls_pk_sign_restartable
)
