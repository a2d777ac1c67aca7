# The board's side of the host's PKCS#11 bridge (tools/p11bridge): a request/response
# loop over the REPL's serial line that forwards each call to the token's C-shaped API.
metadata(
    version="0.1.0",
    description="Serial-line request loop that serves the pkcs11 token to the host's p11-kit bridge",
)

require("pkcs11")
module("p11bridge.py")
