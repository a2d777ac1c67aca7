# _pkcs11: the token's crypto core (CMake-based ports: esp32).
add_library(usermod_pkcs11 INTERFACE)

target_sources(usermod_pkcs11 INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modpkcs11.c
)

target_include_directories(usermod_pkcs11 INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_pkcs11)
