# User C modules of this firmware, for CMake-based ports (esp32):
# pass USER_C_MODULES=<this file>. (Make-based ports find */micropython.mk.)
include(${CMAKE_CURRENT_LIST_DIR}/pkcs11/micropython.cmake)
