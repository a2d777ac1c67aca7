"""Command-line entry point (commands arrive with the provisioning work)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("p11tool: no commands yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
