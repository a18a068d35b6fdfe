"""`python -m pipelines.auth`: issue and revoke the bearer tokens internal callers use.

    python -m pipelines.auth create NAME --scopes summarize,batch,rag,rag:write,jobs [--file F]
    python -m pipelines.auth list [--file F]
    python -m pipelines.auth revoke NAME [--file F]

`create` prints the token once; the file keeps only a salted scrypt hash. A running server picks
up a new or revoked token within a second, without a restart. Errors print one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipelines.auth.store import SCOPES, TokenFile
from pipelines.errors import ConfigError

DEFAULT_FILE = Path("tokens.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.auth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help=f"token file (default: {DEFAULT_FILE})")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a token and print it once")
    create.add_argument("name")
    create.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(SCOPES)}")
    commands.add_parser("list", help="names, scopes and state; never secrets")
    revoke = commands.add_parser("revoke", help="revoke every live token with this name")
    revoke.add_argument("name")
    args = parser.parse_args(argv)
    tokens = TokenFile(args.file)
    try:
        if args.command == "create":
            record, token = tokens.create(args.name, [s.strip() for s in args.scopes.split(",") if s.strip()])
            print(token)
            print(f"token {record.name!r} ({', '.join(record.scopes)}) stored in {args.file}; it is shown only now", file=sys.stderr)
        elif args.command == "list":
            for record in tokens.read().values():
                state = "revoked" if record.revoked else "live"
                print(f"{record.name}\t{','.join(record.scopes)}\t{state}\t{record.created_at}")
        else:
            if not tokens.revoke(args.name):
                print(f"no live token named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name!r}", file=sys.stderr)
    except ConfigError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    return 0
