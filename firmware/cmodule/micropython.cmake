# User C modules of this firmware, for CMake-based ports (esp32):
# pass USER_C_MODULES=<this file>. (Make-based ports find */micropython.mk.)
#   pkcs11  _pkcs11, the token's crypto core (builds on its own)
#   p11tls  _p11tls, the TLS sign hook and its --wrap link flags (needs _pkcs11)
include(${CMAKE_CURRENT_LIST_DIR}/pkcs11/micropython.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/p11tls/micropython.cmake)
