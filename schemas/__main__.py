"""`python -m infoway_mock.schemas check FILE`: validate a recorded stream against the contract."""

from __future__ import annotations

import argparse
import sys

from . import check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infoway_mock.schemas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "check":
        return check.run(args)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
