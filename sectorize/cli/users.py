"""``sectorize users``: the studio's accounts, kept beside the plans in the registry folder.

::

    sectorize users add NAME --role editor|publisher [--replace] [--registry DIR]
    sectorize users list [--registry DIR]
    sectorize users remove NAME [--registry DIR]

``add`` reads the password from standard input: one line (e.g. from a
password manager, ``pass show studio/marie | sectorize users add marie ...``),
or, at a terminal, typed twice without echo. Accounts are made only here, on
the server, never over the web. Each ``add`` and ``remove`` is written to the
registry's audit log (``audit.jsonl``) under the operating-system login of
whoever ran it. A thin shell over :class:`sectorize.app.accounts.UserStore`.

Exit codes (:mod:`sectorize.cli.exit_codes`): 0 done; 2 bad input (a name,
role or password that breaks its rule, an existing name without
``--replace``); 4 not found (no registry in the folder, no such user).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from sectorize.cli.exit_codes import HANDLED, ExitCode, report

#: Registry folder used when ``--registry`` is not given (the same as ``sectorize plans``).
DEFAULT_REGISTRY = Path("sectorize-plans")

#: Roles offered by ``--role`` (:data:`sectorize.app.accounts.ROLES`, repeated so ``--help`` imports nothing).
ROLE_CHOICES = ("editor", "publisher")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sectorize users ...`` to the CLI's sub-parsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY,
                        help=f"registry folder holding the plans and the accounts (default: {DEFAULT_REGISTRY})")
    users = sub.add_parser("users", help="studio accounts: add, list, remove users (editor or publisher)")
    actions = users.add_subparsers(dest="users_command", required=True)

    add = actions.add_parser("add", parents=[common], help="add an account; the password is read from standard "
                             "input (one line), or typed twice at a terminal")
    add.add_argument("name", help="user name: 1-64 letters, digits, . _ - (case-insensitive)")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES,
                     help="editor: drafts, moves, saves, re-runs; publisher: also publishes plans and reads the audit log")
    add.add_argument("--replace", action="store_true", help="replace the password and role of an existing account")
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", parents=[common], help="one line per account: name, role, created")
    listing.set_defaults(handler=_list)

    remove = actions.add_parser("remove", parents=[common], help="remove an account (its sessions end at its next request)")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)


def _check_registry(folder: Path) -> None:
    """Raise ``RegistryNotFoundError`` (exit 4) unless ``folder`` holds a plan registry."""
    from sectorize.store.registry import DB_NAME, RegistryNotFoundError

    if not (folder / DB_NAME).is_file():
        raise RegistryNotFoundError(
            f"{folder}: no plan registry here (no {DB_NAME}); accounts are kept in the registry folder: "
            f"give it with --registry, or create it first with `sectorize plans add RUN_FOLDER --registry {folder}`"
        )


def _os_user() -> str:
    """The operating-system login of whoever runs the command (for the audit log)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name in the environment nor the password database
        return "unknown"


def _read_password(stream=None) -> str:
    """The new password: typed twice at a terminal, else the first line of standard input.

    Raises
    ------
    ValueError
        Nothing on standard input, or the two typed passwords differ.
    """
    stream = sys.stdin if stream is None else stream
    if stream is not None and stream.isatty():
        first = getpass.getpass("password: ")
        second = getpass.getpass("password again: ")
        if first != second:
            raise ValueError("password: the two passwords typed differ; nothing was changed")
        return first
    line = stream.readline() if stream is not None else ""
    if not line:
        raise ValueError("password: nothing on standard input; pipe the password in (one line) or run the "
                         "command at a terminal to type it")
    return line.removesuffix("\n").removesuffix("\r")


def _store(args: argparse.Namespace):
    from sectorize.app.accounts import AuditLog, UserStore

    _check_registry(args.registry)
    return UserStore(args.registry), AuditLog(args.registry)


def _add(args: argparse.Namespace) -> int:
    try:
        from sectorize.app.accounts import check_password, check_role, normalize_name

        # the name and role are checked before the password is asked for
        name, role = normalize_name(args.name), check_role(args.role)
        users, audit = _store(args)
        if users.get(name) is not None and not args.replace:
            raise ValueError(f"name: user {name!r} already exists; remove it first, or give --replace "
                             "to set a new password and role")
        password = check_password(_read_password())
        replaced = users.get(name) is not None
        user = users.add(name, role, password, replace=args.replace)
        audit.append(_os_user(), None, "users add",
                     {"name": user.name, "role": user.role, "replaced": replaced, "via": "command line"})
    except HANDLED as err:
        return report(err)
    print(f"{'replaced' if replaced else 'added'}: {user.name} ({user.role}) in {users.path}")
    return ExitCode.OK


def _list(args: argparse.Namespace) -> int:
    try:
        users, _ = _store(args)
        accounts = users.list()
    except HANDLED as err:
        return report(err)
    if not accounts:
        print(f"no accounts yet in {args.registry}; add one with "
              f"`sectorize users add NAME --role publisher --registry {args.registry}`")
        return ExitCode.OK
    width = max(len("name"), *(len(u.name) for u in accounts))
    print(f"{'name':<{width}}  {'role':<9}  created (UTC)")
    for user in accounts:
        print(f"{user.name:<{width}}  {user.role:<9}  {user.created}")
    return ExitCode.OK


def _remove(args: argparse.Namespace) -> int:
    from sectorize.app.accounts import UserNotFoundError

    try:
        users, audit = _store(args)
        user = users.get(args.name)
        users.remove(args.name)
        audit.append(_os_user(), None, "users remove", {"name": user.name, "role": user.role, "via": "command line"})
    except UserNotFoundError as err:
        print(f"not found: {err}; `sectorize users list --registry {args.registry}` shows the accounts", file=sys.stderr)
        return ExitCode.NOT_FOUND
    except HANDLED as err:
        return report(err)
    print(f"removed: {user.name} ({user.role})")
    return ExitCode.OK
