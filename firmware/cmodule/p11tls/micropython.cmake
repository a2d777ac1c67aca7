# _p11tls: TLS client authentication through the token (CMake-based ports:
# esp32). mbedTLS's CertificateVerify signature is routed to the token by
# wrapping mbedtls_pk_sign_restartable (TLS 1.2) and mbedtls_pk_sign_ext (TLS 1.3)
# at link time (see tls_sign_hook.c).
# It takes its random numbers from _pkcs11: include ../pkcs11/micropython.cmake
# too (firmware/cmodule/micropython.cmake includes both).
if(NOT TARGET usermod_pkcs11)
    message(FATAL_ERROR "_p11tls needs _pkcs11: include pkcs11/micropython.cmake before p11tls/micropython.cmake")
endif()

add_library(usermod_p11tls INTERFACE)

target_sources(usermod_p11tls INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/tls_sign_hook.c
)

target_include_directories(usermod_p11tls INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/../pkcs11
)

# --undefined keeps the linker from skipping the file that holds the __wrap_
# function (see ports/esp32/esp32_common.cmake for the same pattern).
target_link_options(usermod_p11tls INTERFACE
    -Wl,--undefined=__wrap_mbedtls_pk_sign_restartable
    -Wl,--wrap=mbedtls_pk_sign_restartable
    -Wl,--wrap=mbedtls_pk_sign_ext
)

target_link_libraries(usermod INTERFACE usermod_p11tls)
