"""Studio accounts: scrypt hashes, the accounts file, sessions, the login limiter, the audit log
(two real processes appending at once), CSRF helpers and the ``sectorize users`` command."""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib
import io
import json
import multiprocessing
import os
import stat

import pytest

from sectorize.app import accounts
from sectorize.app.accounts import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    AuditLog,
    LoginLimiter,
    SessionStore,
    User,
    UserNotFoundError,
    UserStore,
    check_csrf,
    csrf_cookie,
    hash_password,
    needs_rehash,
    parse_hash,
    role_allows,
    session_cookie,
    verify_password,
)
from sectorize.cli import users as users_cli
from sectorize.cli.exit_codes import ExitCode

PASSWORD = "correct horse battery"


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- hashes


def test_hash_format_and_independent_recomputation():
    stored = hash_password(PASSWORD)
    scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    salt, digest = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
    assert len(salt) == 16 and len(digest) == 32
    # recomputed here with hashlib directly: the string means what it says
    assert hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32) == digest
    assert hash_password(PASSWORD) != stored  # a fresh salt each time


def test_verify_right_and_wrong_password():
    stored = hash_password(PASSWORD)
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert not verify_password("", stored)
    assert not verify_password(PASSWORD, "not a hash")


def test_parameters_are_read_from_the_stored_string():
    weak = hash_password(PASSWORD, n=2**10, r=4, p=2)
    params = parse_hash(weak)
    assert (params.n, params.r, params.p) == (2**10, 4, 2)
    assert verify_password(PASSWORD, weak)  # verified with its own parameters, not the current ones
    assert needs_rehash(weak) and not needs_rehash(hash_password(PASSWORD))
    strong = hash_password(PASSWORD, n=2**15)  # above OpenSSL's default memory limit: still verifies
    assert parse_hash(strong).n == 2**15 and verify_password(PASSWORD, strong)


@pytest.mark.parametrize("bad", ["scrypt$16384$8$1$AAAA", "bcrypt$16384$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",
                                 "scrypt$1000$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",      # N not a power of 2
                                 "scrypt$1073741824$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",  # 2**30: too costly
                                 "scrypt$16384$8$1$!!!$AAAA"])
def test_unreadable_or_hostile_hash_strings_are_refused(bad):
    with pytest.raises(ValueError, match="password hash"):
        parse_hash(bad)
    assert not verify_password(PASSWORD, bad)


# --------------------------------------------------------------------------- user store


def test_add_verify_list_remove(tmp_path):
    store = UserStore(tmp_path, clock=Clock())
    user = store.add("Marie.Dupont", "publisher", PASSWORD)
    assert user == User("marie.dupont", "publisher", "2027-01-15T08:00:00+00:00")
    assert store.verify("marie.dupont", PASSWORD) == user
    assert store.verify("MARIE.DUPONT", PASSWORD) == user  # names are case-insensitive
    assert store.verify("marie.dupont", PASSWORD.upper()) is None
    assert store.verify("nobody", PASSWORD) is None
    assert store.verify("not a name!", PASSWORD) is None
    store.add("paul", "editor", "another long one")
    assert [(u.name, u.role) for u in store.list()] == [("marie.dupont", "publisher"), ("paul", "editor")]
    assert all(not hasattr(u, "hash") for u in store.list())
    store.remove("Paul")
    assert store.get("paul") is None and store.verify("paul", "another long one") is None
    with pytest.raises(UserNotFoundError, match="no user 'paul'"):
        store.remove("paul")


def test_file_is_private_and_holds_hashes_only(tmp_path):
    old_umask = os.umask(0o022)  # a default that would make new files world-readable
    try:
        UserStore(tmp_path).add("marie", "editor", PASSWORD)
    finally:
        os.umask(old_umask)
    path = tmp_path / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text
    entry = json.loads(text)["users"]["marie"]
    assert entry["role"] == "editor" and entry["hash"].startswith("scrypt$16384$8$1$")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp.json")] == []  # no temp file left


def test_re_adding_is_refused_unless_replace(tmp_path):
    store = UserStore(tmp_path)
    store.add("marie", "editor", PASSWORD)
    with pytest.raises(ValueError, match="name: user 'marie' already exists"):
        store.add("MARIE", "publisher", "a different password")
    assert store.verify("marie", PASSWORD).role == "editor"
    store.add("marie", "publisher", "a different password", replace=True)
    assert store.verify("marie", PASSWORD) is None
    assert store.verify("marie", "a different password").role == "publisher"


@pytest.mark.parametrize(("name", "role", "password", "field"), [
    ("", "editor", PASSWORD, "name"),
    ("x" * 65, "editor", PASSWORD, "name"),
    ("marie dupont", "editor", PASSWORD, "name"),
    ("héloïse", "editor", PASSWORD, "name"),
    ("marie", "admin", PASSWORD, "role"),
    ("marie", "editor", "short", "password"),
    ("marie", "editor", "two\nlines here", "password"),
])
def test_invalid_fields_are_named(tmp_path, name, role, password, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        UserStore(tmp_path).add(name, role, password)
    assert not (tmp_path / "users.json").exists()


def test_missing_folder_and_damaged_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        UserStore(tmp_path / "nowhere")
    (tmp_path / "users.json").write_text("{not json")
    with pytest.raises(ValueError, match="users.json: not a readable accounts file"):
        UserStore(tmp_path).list()


def test_weak_hash_is_upgraded_at_login(tmp_path):
    store = UserStore(tmp_path)
    store.add("marie", "editor", PASSWORD)
    path = tmp_path / "users.json"
    payload = json.loads(path.read_text())
    payload["users"]["marie"]["hash"] = hash_password(PASSWORD, n=2**10)
    path.write_text(json.dumps(payload))
    assert store.verify("marie", PASSWORD) is not None
    upgraded = json.loads(path.read_text())["users"]["marie"]["hash"]
    assert parse_hash(upgraded).n == 2**14 and verify_password(PASSWORD, upgraded)


def test_changes_by_another_store_are_seen(tmp_path):
    app_view, cli_view = UserStore(tmp_path), UserStore(tmp_path)
    assert app_view.list() == []
    cli_view.add("marie", "editor", PASSWORD)
    assert app_view.get("marie") is not None
    cli_view.remove("marie")
    assert app_view.verify("marie", PASSWORD) is None


def test_unknown_name_costs_a_hash_too(tmp_path, monkeypatch):
    store = UserStore(tmp_path)
    store.add("marie", "editor", PASSWORD)
    calls = []
    real = accounts._scrypt
    monkeypatch.setattr(accounts, "_scrypt", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    store.verify("marie", "wrong password")
    store.verify("nobody", "wrong password")
    assert calls == [2**14, 2**14]  # one full-cost scrypt each, known name or not


# --------------------------------------------------------------------------- sessions


def test_session_tokens_and_idle_expiry():
    clock = Clock()
    sessions = SessionStore(idle_timeout_s=3600, absolute_timeout_s=4 * 3600, clock=clock)
    s = sessions.create(User("marie", "publisher", "x"))
    assert (s.user, s.role, s.created, s.expires) == ("marie", "publisher", clock.now, clock.now + 3600)
    assert len(s.token) >= 43 and len(s.csrf_token) >= 43 and s.token != s.csrf_token
    clock.now += 3599
    assert sessions.get(s.token) is s  # used: the idle time restarts
    clock.now += 3599
    assert sessions.get(s.token) is s
    clock.now += 3600
    assert sessions.get(s.token) is None and len(sessions) == 0  # removed
    assert sessions.get(None) is None and sessions.get("made-up") is None


def test_session_absolute_limit_and_drop():
    clock = Clock()
    sessions = SessionStore(idle_timeout_s=3600, absolute_timeout_s=2.5 * 3600, clock=clock)
    s = sessions.create(User("marie", "editor", "x"))
    other = sessions.create(User("paul", "editor", "x"))
    for _ in range(2):
        clock.now += 3000
        assert sessions.get(s.token) is not None
    clock.now += 3000  # 2.5 h after login, though used 50 min ago
    assert sessions.get(s.token) is None
    sessions.drop(other.token)
    sessions.drop("unknown")
    assert sessions.get(other.token) is None
    third = sessions.create(User("paul", "editor", "x"))
    assert sessions.drop_user("paul") == 1 and sessions.get(third.token) is None


# --------------------------------------------------------------------------- login limiter


def test_limiter_blocks_the_sixth_attempt_then_allows_after_the_window():
    clock = Clock(100.0)
    limiter = LoginLimiter(clock=clock)
    for i in range(5):
        assert limiter.retry_after("marie", "10.0.0.1") == 0
        limiter.failure("marie", "10.0.0.1")
        clock.now += 10
    wait = limiter.retry_after("marie", "10.0.0.1")
    assert wait == pytest.approx(100 + 300 - 150)  # when the first failure leaves the window
    assert not limiter.allowed("marie", "10.0.0.2")  # the name is blocked from any address
    assert not limiter.allowed("paul", "10.0.0.1")  # the address is blocked for any name
    assert limiter.allowed("paul", "10.0.0.2")
    clock.now += wait
    assert limiter.allowed("marie", "10.0.0.1")  # sliding: one slot free again ...
    limiter.failure("marie", "10.0.0.1")
    assert limiter.retry_after("marie", "10.0.0.1") == pytest.approx(10)  # ... until the next one leaves


def test_success_resets_the_user_but_not_the_address():
    limiter = LoginLimiter(clock=Clock())
    for _ in range(4):
        limiter.failure("Marie", "10.0.0.1")
    limiter.success("marie", "10.0.0.1")
    limiter.failure("marie", "10.0.0.9")
    assert limiter.allowed("marie", "10.0.0.9")  # 1 failure counted for the name after the reset
    limiter.failure("someone", "10.0.0.1")
    assert not limiter.allowed("other", "10.0.0.1")  # the address kept its 4 + 1


# --------------------------------------------------------------------------- audit log


def test_audit_lines_are_appended_and_read_back(tmp_path):
    clock = Clock()
    log = AuditLog(tmp_path, clock=clock)
    assert log.read() == []
    log.append("marie", "publisher", "publish", {"plan_id": "P20270101-abcdef12", "effective_from": "2027-03-01"})
    clock.now += 60
    log.append(None, None, "login_failed", {"name": "paul", "address": "10.0.0.1"})
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    entries = log.read()
    assert entries[0] == {"at": "2027-01-15T08:00:00+00:00", "user": "marie", "role": "publisher",
                          "action": "publish", "what": {"plan_id": "P20270101-abcdef12", "effective_from": "2027-03-01"}}
    assert entries[1]["at"] == "2027-01-15T08:01:00+00:00" and entries[1]["action"] == "login_failed"
    assert log.read(limit=1) == entries[-1:]
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o600


@pytest.mark.parametrize("what", [{"password": "x"}, {"user": {"hash": "scrypt$..."}}, {"items": [{"csrf_token": "t"}]},
                                  {"when": object()}])
def test_audit_refuses_secrets_and_non_json(tmp_path, what):
    with pytest.raises(ValueError, match="what"):
        AuditLog(tmp_path).append("marie", "editor", "save", what)
    assert AuditLog(tmp_path).read() == []


def test_torn_line_stays_alone_and_is_shown(tmp_path):
    log = AuditLog(tmp_path)
    log.append("marie", "editor", "save", {"plan_id": "P1"})
    with open(tmp_path / "audit.jsonl", "ab") as fh:
        fh.write(b'{"at": "2027-')  # a crash mid-write
    log.append("marie", "editor", "save", {"plan_id": "P2"})
    entries = log.read()
    assert [e["action"] for e in entries] == ["save", "unreadable line", "save"]
    assert entries[1]["what"] == {"line": 2} and entries[2]["what"] == {"plan_id": "P2"}


def _append_many(folder: str, writer: str, count: int) -> None:
    log = AuditLog(folder)
    for i in range(count):
        # lines far longer than a pipe buffer (4 KiB): whole only thanks to the lock
        log.append(writer, "editor", "save", {"i": i, "note": writer * 20_000})


def test_two_processes_append_whole_lines(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 60)) for w in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    entries = AuditLog(tmp_path).read()
    assert len(entries) == 120 and "unreadable line" not in {e["action"] for e in entries}
    for writer in ("a", "b"):
        mine = [e for e in entries if e["user"] == writer]
        assert [e["what"]["i"] for e in mine] == list(range(60))
        assert all(e["what"]["note"] == writer * 20_000 for e in mine)


def _add_many(folder: str, prefix: str, count: int) -> None:
    store = UserStore(folder)
    for i in range(count):
        store.add(f"{prefix}{i}", "editor", PASSWORD)


def test_two_processes_adding_users_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(str(tmp_path), prefix, 6)) for prefix in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert sorted(u.name for u in UserStore(tmp_path).list()) == sorted(f"{x}{i}" for x in "ab" for i in range(6))


# --------------------------------------------------------------------------- web helpers


def test_check_csrf():
    assert check_csrf("abc", "abc")
    assert check_csrf("abc", "abc", expected="abc")
    assert not check_csrf("abc", "abc", expected="xyz")  # a planted cookie that is not the session's
    assert not check_csrf("abc", "abd")
    assert not check_csrf(None, "abc") and not check_csrf("abc", None) and not check_csrf("", "")
    assert not check_csrf("é", "e")  # non-ASCII compared, not an error


def test_roles():
    assert role_allows("publisher", "publisher") and role_allows("publisher", "editor")
    assert role_allows("editor", "editor") and not role_allows("editor", "publisher")
    assert not role_allows(None, "editor") and role_allows(None, None)
    assert not role_allows("admin", "editor")
    with pytest.raises(ValueError, match="needed role"):
        role_allows("editor", "admin")


def test_cookie_attributes():
    s = SessionStore().create(User("marie", "editor", "x"))
    sc, cc = session_cookie(s), csrf_cookie(s, secure=True)
    assert (sc["key"], sc["value"], sc["httponly"], sc["samesite"], sc["path"]) == (SESSION_COOKIE, s.token, True, "strict", "/")
    assert (cc["key"], cc["value"], cc["httponly"], cc["samesite"], cc["secure"]) == (CSRF_COOKIE, s.csrf_token, False, "strict", True)


def test_cookies_as_starlette_writes_them():
    from starlette.responses import Response

    s = SessionStore().create(User("marie", "editor", "x"))
    response = Response()
    response.set_cookie(**session_cookie(s))
    response.set_cookie(**csrf_cookie(s))
    headers = [v.decode() for k, v in response.raw_headers if k == b"set-cookie"]
    assert any(h.startswith(f"session={s.token}") and "HttpOnly" in h and "SameSite=strict" in h for h in headers)
    assert any(h.startswith(f"csrf_token={s.csrf_token}") and "HttpOnly" not in h for h in headers)
    for kwargs in accounts.cleared_cookies():
        response.delete_cookie(**kwargs)


# --------------------------------------------------------------------------- sectorize users


@pytest.fixture
def registry(tmp_path):
    from sectorize.store.registry import Registry

    Registry(tmp_path / "reg")  # an empty registry: plans.sqlite
    return tmp_path / "reg"


class FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool = False) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def _cli(args: list[str]) -> int:
    """Run ``sectorize users ...``: through the main command once registered there, else through this module."""
    main_module = importlib.import_module("sectorize.cli.main")
    if "sectorize.cli.users" in main_module._COMMAND_MODULES:
        return main_module.main(["users", *args])
    parser = argparse.ArgumentParser(prog="sectorize")
    users_cli.register(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args(["users", *args])
    return int(parsed.handler(parsed))


def test_cli_add_list_remove_with_audit(registry, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", FakeStdin(PASSWORD + "\n"))
    monkeypatch.setattr("getpass.getuser", lambda: "root-admin")
    assert _cli(["add", "Marie", "--role", "publisher", "--registry", str(registry)]) == ExitCode.OK
    assert "added: marie (publisher)" in capsys.readouterr().out
    assert UserStore(registry).verify("marie", PASSWORD).role == "publisher"

    assert _cli(["list", "--registry", str(registry)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "marie" in out and "publisher" in out and "scrypt" not in out

    monkeypatch.setattr("sys.stdin", FakeStdin("a different password\n"))
    assert _cli(["add", "marie", "--role", "editor", "--registry", str(registry)]) == ExitCode.BAD_INPUT
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", FakeStdin("a different password\r\n"))
    assert _cli(["add", "marie", "--role", "editor", "--replace", "--registry", str(registry)]) == ExitCode.OK
    assert UserStore(registry).verify("marie", "a different password").role == "editor"

    assert _cli(["remove", "marie", "--registry", str(registry)]) == ExitCode.OK
    assert _cli(["remove", "marie", "--registry", str(registry)]) == ExitCode.NOT_FOUND
    assert "not found: no user 'marie'" in capsys.readouterr().err

    entries = AuditLog(registry).read()
    assert [(e["user"], e["action"], e["what"]["name"]) for e in entries] == [
        ("root-admin", "users add", "marie"), ("root-admin", "users add", "marie"), ("root-admin", "users remove", "marie")]
    assert [e["what"].get("replaced") for e in entries[:2]] == [False, True]
    assert PASSWORD not in (registry / "audit.jsonl").read_text()


def test_cli_refuses_short_or_missing_password(registry, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", FakeStdin("short\n"))
    assert _cli(["add", "marie", "--role", "editor", "--registry", str(registry)]) == ExitCode.BAD_INPUT
    assert "password: too short" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", FakeStdin(""))
    assert _cli(["add", "marie", "--role", "editor", "--registry", str(registry)]) == ExitCode.BAD_INPUT
    assert "nothing on standard input" in capsys.readouterr().err
    assert not (registry / "users.json").exists() and not (registry / "audit.jsonl").exists()


def test_cli_terminal_asks_twice(registry, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", FakeStdin("", tty=True))
    typed = iter([PASSWORD, PASSWORD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert _cli(["add", "marie", "--role", "editor", "--registry", str(registry)]) == ExitCode.BAD_INPUT
    assert "the two passwords typed differ" in capsys.readouterr().err
    typed = iter([PASSWORD, PASSWORD])
    assert _cli(["add", "marie", "--role", "editor", "--registry", str(registry)]) == ExitCode.OK
    assert UserStore(registry).verify("marie", PASSWORD) is not None


def test_cli_needs_a_registry_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", FakeStdin(PASSWORD + "\n"))
    folder = tmp_path / "plans"
    folder.mkdir()  # a folder, but no registry in it
    assert _cli(["add", "marie", "--role", "editor", "--registry", str(folder)]) == ExitCode.NOT_FOUND
    err = capsys.readouterr().err
    assert str(folder) in err and "sectorize plans add" in err
    assert _cli(["list", "--registry", str(tmp_path / "nowhere")]) == ExitCode.NOT_FOUND
    assert list(folder.iterdir()) == []


def test_cli_bad_name_is_bad_input(registry, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", FakeStdin(PASSWORD + "\n"))
    assert _cli(["add", "marie dupont", "--role", "editor", "--registry", str(registry)]) == ExitCode.BAD_INPUT
    assert "name: 'marie dupont' is not a user name" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses an unknown role itself
        _cli(["add", "marie", "--role", "admin", "--registry", str(registry)])


def test_cli_in_a_real_process_reads_the_piped_password(registry):
    import subprocess
    import sys

    command = [sys.executable, "-m", "sectorize.cli", "users", "add", "marie", "--role", "publisher",
               "--registry", str(registry)]
    proc = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert UserStore(registry).verify("marie", PASSWORD).role == "publisher"
    proc = subprocess.run([*command[:4], "remove", "nobody", "--registry", str(registry)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == ExitCode.NOT_FOUND and "no user 'nobody'" in proc.stderr
