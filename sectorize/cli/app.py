"""``sectorize app``: the team's web app (referral desk and plan studio) over a plan registry.

Usage::

    sectorize app [--registry DIR] [--host 127.0.0.1] [--port 8000]

The desk is at ``http://127.0.0.1:8000/`` and the studio at ``/studio``;
editors and publishers are added with ``sectorize users add NAME --role
editor|publisher --registry DIR``. The app is :mod:`sectorize.app.web`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sectorize.cli.exit_codes import HANDLED, ExitCode, report

DEFAULT_REGISTRY = Path("sectorize-plans")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sectorize app`` to the CLI's sub-parsers."""
    app = sub.add_parser("app", help="web app: referral desk (/) and plan studio (/studio) over a plan registry")
    app.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY,
                     help=f"registry folder (default: {DEFAULT_REGISTRY})")
    app.add_argument("--host", default="127.0.0.1",
                     help="interface to listen on (default 127.0.0.1: this machine only)")
    app.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    app.set_defaults(handler=_app)


def _app(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"error: --port must be 1..65535, got {args.port}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    from sectorize.app.accounts import UserStore
    from sectorize.app.web import serve_app
    from sectorize.store.registry import Registry

    try:
        Registry(args.registry, create=False)
        users = UserStore(args.registry).list()
    except HANDLED as err:   # no registry there (the message says how to make one), unreadable users file
        return report(err)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: other machines can reach the app; the session cookies are "
              "not marked Secure (no HTTPS here): put it behind the hospital's HTTPS proxy", file=sys.stderr)
    if len(users) == 0:
        print(f"note: registry {args.registry} has no user yet: the studio needs one "
              f"(sectorize users add NAME --role publisher --registry {args.registry})", file=sys.stderr)
    print(f"sectorize app on http://{args.host}:{args.port}/ (desk) and /studio (plans); registry {args.registry}",
          file=sys.stderr)
    serve_app(args.registry, host=args.host, port=args.port)
    return ExitCode.OK
