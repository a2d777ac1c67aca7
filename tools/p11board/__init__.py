"""p11board: the host-side provisioning CLI for the MicroPython PKCS#11 token.

    cli         the command line, main(), exit codes
    commands    one function per subcommand
    show        output: text and --json
    connection  board selection (serial port, or this repository's unix/qemu firmware
                through p11lab) and the raw-REPL transport
    device      the scripts sent to the board (they use the token's Pythonic layer)
    files       key and certificate files, checked on the host
    names       PKCS#11 numbers shown by name, the default labels
    errors      exit codes and the errors that carry them
"""

__version__ = "0.1.0"
