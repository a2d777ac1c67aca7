# _pkcs11: the token's crypto core (CMake-based ports: esp32, on ESP-IDF's mbedTLS).
# The TLS sign hook is its own module (../p11tls); this one builds without it.
# Each C file has one job (see modpkcs11.h); add one line per file.
add_library(usermod_pkcs11 INTERFACE)

target_sources(usermod_pkcs11 INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modpkcs11.c
    ${CMAKE_CURRENT_LIST_DIR}/util.c
    ${CMAKE_CURRENT_LIST_DIR}/drbg.c
    ${CMAKE_CURRENT_LIST_DIR}/p256.c
    ${CMAKE_CURRENT_LIST_DIR}/rsa.c
    ${CMAKE_CURRENT_LIST_DIR}/pss.c
    ${CMAKE_CURRENT_LIST_DIR}/hash.c
    ${CMAKE_CURRENT_LIST_DIR}/aead.c
    ${CMAKE_CURRENT_LIST_DIR}/pem.c
    ${CMAKE_CURRENT_LIST_DIR}/parse.c
    ${CMAKE_CURRENT_LIST_DIR}/fsmode.c
    ${CMAKE_CURRENT_LIST_DIR}/lock.c
    ${CMAKE_CURRENT_LIST_DIR}/p256m.c
)

# p256m.c #includes p256-m.c from an mbedTLS tree (mbedTLS ships it in
# 3rdparty/p256-m since 3.5); nothing is copied into this repository. Prefer
# MicroPython's lib/mbedtls (the mbedTLS 3.6 the unix and qemu builds use, so
# every port runs the same, tested p256-m; it needs only
# mbedtls_platform_zeroize and the PSA type names from the headers), else
# the copy inside ESP-IDF's mbedTLS.
# Duplicate symbols cannot happen even when IDF links its own p256-m (its
# PSA driver, MBEDTLS_PSA_P256M_DRIVER_ENABLED): p256m_names.h gives our
# copy's public functions _pkcs11 names, and p256m.c supplies its random
# source under a _pkcs11 name too.
if(DEFINED IDF_PATH)
    set(PKCS11_IDF_PATH ${IDF_PATH})
else()
    set(PKCS11_IDF_PATH $ENV{IDF_PATH})
endif()
set(PKCS11_P256M_CANDIDATES
    ${MICROPY_DIR}/lib/mbedtls/3rdparty/p256-m/p256-m
    ${PKCS11_IDF_PATH}/components/mbedtls/mbedtls/3rdparty/p256-m/p256-m
)
unset(PKCS11_P256M_DIR)
foreach(dir ${PKCS11_P256M_CANDIDATES})
    if(NOT PKCS11_P256M_DIR AND EXISTS ${dir}/p256-m.c)
        set(PKCS11_P256M_DIR ${dir})
    endif()
endforeach()
if(NOT PKCS11_P256M_DIR)
    message(FATAL_ERROR "_pkcs11: p256-m.c not found in: ${PKCS11_P256M_CANDIDATES} (it ships with mbedTLS >= 3.5)")
endif()
message(STATUS "_pkcs11: p256-m from ${PKCS11_P256M_DIR}")

target_include_directories(usermod_pkcs11 INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
    ${PKCS11_P256M_DIR}
)

target_link_libraries(usermod INTERFACE usermod_pkcs11)

