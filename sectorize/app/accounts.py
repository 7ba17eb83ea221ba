"""Who may use the studio: user accounts, password hashes, sessions, CSRF, login rate limit, audit log.

The referral desk is public; the studio (drafts, moves, saves, re-optimising,
demand uploads) needs an account with the role ``"editor"``, and putting a plan
in service (publishing) or reading the audit log needs ``"publisher"``, which
may also do everything an editor does. Accounts are made on the server's
command line (``sectorize users add``), never over the web.

Choices
-------
Passwords: :func:`hashlib.scrypt`
    A memory-hard key-derivation function in the standard library (no
    dependency to install or audit): each guess costs 16 MiB of memory and
    tens of milliseconds, which makes guessing on GPUs or dedicated hardware
    expensive, unlike a fast hash (SHA-256) or a CPU-only one (PBKDF2). Each
    password gets its own random 16-byte salt. The stored string
    ``scrypt$n$r$p$salt_b64$hash_b64`` carries its parameters, so they can be
    raised later: old hashes keep verifying with their own parameters and are
    re-hashed with the current ones at the next successful login. Hashes are
    compared with :func:`hmac.compare_digest`, and a login with an unknown
    name hashes too (against a dummy hash), so the answer's timing does not
    tell whether a name exists.
Accounts file: ``users.json`` in the registry folder
    A handful of accounts beside the plans they govern (one folder to back
    up), readable by the server's user only (mode 0600), replaced atomically
    (:mod:`sectorize.store.atomic`) under a file lock, so two ``sectorize users``
    commands cannot lose each other's change. The web app re-reads it when it
    changes, so a removed user is refused at once.
Sessions: in memory
    The app is one process on a team's server; a session is a random
    256-bit token (:func:`secrets.token_urlsafe`) mapped to a user in a
    dictionary. Nothing to store, clean or leak on disk, and restarting the
    app logs everyone out, which is the safe default after an upgrade. A
    session ends after :data:`IDLE_TIMEOUT_S` without use (a working day) and
    at the latest :data:`ABSOLUTE_TIMEOUT_S` after login.
CSRF: double-submit cookie with ``SameSite=Strict``
    At login the app sets two cookies: ``session`` (``HttpOnly``, JavaScript
    cannot read it) and ``csrf_token`` (readable by the page's script). Every
    state-changing request (POST, except the login itself) must repeat the
    ``csrf_token`` cookie in the ``X-CSRF-Token`` header (:func:`check_csrf`).
    Another site can make the browser send cookies but can neither read them
    nor set custom headers on a cross-site request, and ``SameSite=Strict``
    keeps the browser from sending the cookies on cross-site requests at all:
    two independent barriers. The CSRF token is also the session's own
    (:attr:`Session.csrf_token`), so a cookie planted by a neighbouring
    sub-domain does not pass either.
Login rate limit: :class:`LoginLimiter`
    At most :data:`MAX_FAILURES` failed logins per user name and per client
    address in a sliding window of :data:`WINDOW_S` seconds; further attempts
    are refused (HTTP 429 with ``Retry-After``) without checking the
    password. A success clears the user name's failures only (clearing the
    address would let someone with an account reset their own limit between
    guesses at another).
Audit log: ``audit.jsonl`` in the registry folder
    One JSON object per line, appended, flushed and synced to disk under a
    file lock (so lines of two processes never interleave); nothing is ever
    rewritten. Entries name who did what (save, publish, login, ...) and
    never hold a password, hash, token or patient-level data (:meth:`AuditLog.append`
    refuses keys that look like secrets).

Example
-------
>>> users = UserStore("sectorize-plans")                                  # doctest: +SKIP
>>> users.add("marie", "publisher", "correct horse battery")             # doctest: +SKIP
>>> user = users.verify("marie", "correct horse battery")                # doctest: +SKIP
>>> session = SessionStore().create(user)                                 # doctest: +SKIP
>>> role_allows(session.role, "editor")                                   # doctest: +SKIP
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sectorize.store.atomic import atomic_path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

# --------------------------------------------------------------------------- roles

#: The roles, least to most powerful: a publisher may do everything an editor does.
ROLES: tuple[str, ...] = ("editor", "publisher")

_RANK = {None: 0, "anonymous": 0, "editor": 1, "publisher": 2}


def role_allows(role: str | None, needed: str | None) -> bool:
    """Whether a user with ``role`` may do what needs ``needed``.

    Parameters
    ----------
    role
        The user's role: ``"editor"``, ``"publisher"``, or ``None`` for an
        anonymous visitor. An unknown role allows nothing beyond anonymous.
    needed
        The role an action needs: ``None`` (or ``"anonymous"``) for public
        pages, ``"editor"`` for the studio, ``"publisher"`` to publish and
        read the audit log.

    Returns
    -------
    bool
        True when ``role`` is at least ``needed``.

    Raises
    ------
    ValueError
        ``needed`` is not a role (a programming error, not a user's).
    """
    if needed not in _RANK:
        raise ValueError(f"needed role {needed!r} is not one of {', '.join(ROLES)} (or None for anonymous)")
    return _RANK.get(role, 0) >= _RANK[needed]


# --------------------------------------------------------------------------- password hashes

#: scrypt cost parameters of new hashes: N (CPU/memory cost), r (block size), p (parallelism).
#: 128 * N * r bytes = 16 MiB of memory per hash.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

#: Length of the random salt and of the derived key, in bytes.
SALT_BYTES, HASH_BYTES = 16, 32

#: Accepted password length, in characters (the upper bound only keeps requests small).
MIN_PASSWORD, MAX_PASSWORD = 10, 1024

#: Upper bounds on parameters read from a stored hash (a damaged or hostile file cannot
#: make one login take gigabytes of memory).
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16


def _password_bytes(password: str) -> bytes:
    # the same text typed on two keyboards may arrive in two Unicode forms (é as one or two code points)
    return unicodedata.normalize("NFC", password).encode("utf-8")


def check_password(password: object) -> str:
    """Return ``password`` if it is acceptable for a new account, else raise a ValueError naming the rule."""
    if not isinstance(password, str):
        raise ValueError(f"password: must be text, not {type(password).__name__}")
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password: too short ({len(password)} characters); use at least {MIN_PASSWORD}, "
                         "e.g. a few unrelated words")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"password: too long ({len(password)} characters); use at most {MAX_PASSWORD}")
    if any(ch in password for ch in "\r\n\x00"):
        raise ValueError("password: must be one line (no line break or NUL character)")
    return password


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # OpenSSL needs 128*r*(N+2) + 128*r*p bytes; its default limit (32 MiB) would refuse raised parameters
    maxmem = 128 * r * (n + 2 + p) + (1 << 20)
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Hash ``password`` with scrypt and a fresh random salt.

    Parameters
    ----------
    password
        The password (any length accepted here; :func:`check_password` holds
        the rules for new accounts).
    n, r, p
        scrypt cost parameters (default: the current ones).

    Returns
    -------
    str
        ``"scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>"``.
    """
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(_password_bytes(password), salt, n, r, p, HASH_BYTES)
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(digest)}"


@dataclass(frozen=True)
class HashParams:
    """The parts of a stored hash string (see :func:`parse_hash`)."""

    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def parse_hash(stored: str) -> HashParams:
    """Split a stored ``scrypt$n$r$p$salt$hash`` string into its parameters.

    Raises
    ------
    ValueError
        Not a scrypt hash written by :func:`hash_password`, or parameters
        out of range (N a power of two from 2 to 2**20, r 1..32, p 1..16).
    """
    parts = stored.split("$") if isinstance(stored, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("password hash: not of the form scrypt$n$r$p$salt$hash")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except ValueError as err:
        raise ValueError(f"password hash: unreadable parameters ({err})") from None
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise ValueError(f"password hash: scrypt parameters out of range (n={n}, r={r}, p={p})")
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("password hash: salt or hash too short")
    return HashParams(n, r, p, salt, digest)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (compared in constant time).

    An unreadable ``stored`` string matches nothing (and still costs one
    hash, so that case is not faster either).
    """
    try:
        params = parse_hash(stored)
    except ValueError:
        _scrypt(_password_bytes(password), b"\0" * SALT_BYTES, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES)
        return False
    digest = _scrypt(_password_bytes(password), params.salt, params.n, params.r, params.p, len(params.digest))
    return hmac.compare_digest(digest, params.digest)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than the current ones (re-hash at next login)."""
    try:
        params = parse_hash(stored)
    except ValueError:
        return True
    return (params.n, params.r, params.p) < (SCRYPT_N, SCRYPT_R, SCRYPT_P) or len(params.salt) < SALT_BYTES


#: What an unknown name is checked against: a well-formed hash with the current parameters
#: whose digest is random bytes (no password hashes to it; made without hashing anything).
_DUMMY_HASH = "scrypt${}${}${}${}${}".format(
    SCRYPT_N, SCRYPT_R, SCRYPT_P, base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode("ascii"),
    base64.b64encode(secrets.token_bytes(HASH_BYTES)).decode("ascii"))


# --------------------------------------------------------------------------- file locks


@contextmanager
def _file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an advisory lock on ``path`` (created, mode 0600) between processes.

    ``fcntl.flock`` on POSIX (shared or exclusive); on Windows an exclusive
    byte-range lock via ``msvcrt``. Locks are per open file, so threads of
    one process exclude each other too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows
            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after 10 s; keep waiting
                    continue
        yield
    finally:
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:  # pragma: no cover - Windows
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)


def _utc_now_iso(clock: Callable[[], float] = time.time) -> str:
    return datetime.fromtimestamp(clock(), tz=timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- users

#: File name of the accounts inside the registry folder, and of its lock file.
USERS_FILE, USERS_LOCK = "users.json", ".users.lock"

#: Version of the layout of ``users.json``.
USERS_FORMAT = 1

_NAME = re.compile(r"[a-z0-9._-]{1,64}")


def normalize_name(name: object) -> str:
    """The canonical form of a user name: trimmed, lower-case; a ValueError names the rule it breaks.

    Names are 1 to 64 characters among ASCII letters, digits, ``.``, ``_``
    and ``-``; they are case-insensitive (``Marie`` logs in as ``marie``).
    """
    if not isinstance(name, str):
        raise ValueError(f"name: must be text, not {type(name).__name__}")
    canonical = name.strip().lower()
    if not _NAME.fullmatch(canonical):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ValueError(f"name: {shown!r} is not a user name; use 1 to 64 characters among letters a-z, "
                         "digits and . _ - (e.g. marie.dupont)")
    return canonical


def check_role(role: object) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise a ValueError naming them."""
    if role not in ROLES:
        raise ValueError(f"role: {role!r} is not a role; use one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


@dataclass(frozen=True)
class User:
    """An account, without its password hash.

    Attributes
    ----------
    name
        Canonical (lower-case) user name.
    role
        ``"editor"`` or ``"publisher"``.
    created
        When the account was added (or last replaced), ISO 8601 UTC.
    """

    name: str
    role: str
    created: str


class UserNotFoundError(KeyError):
    """No account of that name."""

    def __str__(self) -> str:  # KeyError quotes its message; this one reads as a sentence
        return str(self.args[0]) if self.args else "no such user"


class UserStore:
    """The accounts of a registry folder, kept in ``folder/users.json`` (mode 0600).

    Every call re-reads the file when it changed (so accounts added or
    removed on the command line apply to a running app at once); every
    change is a read-modify-write under a file lock, written atomically.

    Parameters
    ----------
    folder
        The registry folder; it must exist (the file is created at the first
        :meth:`add`).
    clock
        Seconds since the epoch (default :func:`time.time`); tests inject one.

    Raises
    ------
    FileNotFoundError
        ``folder`` is not a folder.
    """

    def __init__(self, folder: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder for the user accounts; "
                                    "create the registry first with `sectorize plans add`")
        self.path = self.folder / USERS_FILE
        self._lock_path = self.folder / USERS_LOCK
        self._clock = clock
        self._mutex = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, dict[str, str]]] | None = None

    # -- file

    def _read(self) -> dict[str, dict[str, str]]:
        """The accounts by name (re-read only when the file's identity, size or time changed)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._mutex:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.path}: not a readable accounts file ({err}); restore it from a backup "
                             "or remove it and add the users again") from None
        if not isinstance(payload, dict) or payload.get("format") != USERS_FORMAT or not isinstance(payload.get("users"), dict):
            raise ValueError(f"{self.path}: not an accounts file of this sectorize (expected format {USERS_FORMAT})")
        users = payload["users"]
        with self._mutex:
            self._cache = (key, users)
        return users

    def _write(self, users: dict[str, dict[str, str]]) -> None:
        text = json.dumps({"format": USERS_FORMAT, "users": dict(sorted(users.items()))}, indent=2) + "\n"
        with atomic_path(self.path) as tmp:
            # created 0600 from the start: the hashes are never readable by others, even for a moment
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(self.path, 0o600)  # umask may have narrowed, never widened; make it exact

    @contextmanager
    def _changing(self) -> Iterator[dict[str, dict[str, str]]]:
        """Yield a copy of the accounts to modify; written back when the block succeeds."""
        with _file_lock(self._lock_path):
            users = {name: dict(entry) for name, entry in self._read().items()}
            yield users
            self._write(users)

    # -- API

    def add(self, name: str, role: str, password: str, *, replace: bool = False) -> User:
        """Add an account (or, with ``replace``, reset an existing one's role and password).

        Parameters
        ----------
        name
            1 to 64 characters among letters, digits, ``.``, ``_``, ``-``
            (stored lower-case).
        role
            ``"editor"`` or ``"publisher"``.
        password
            At least :data:`MIN_PASSWORD` characters, one line.
        replace
            Allow replacing an existing account of that name.

        Returns
        -------
        User
            The account as stored.

        Raises
        ------
        ValueError
            A field breaks its rule (the message names it), or the name
            exists and ``replace`` is false.
        """
        name = normalize_name(name)
        role = check_role(role)
        stored = hash_password(check_password(password))
        created = _utc_now_iso(self._clock)
        with self._changing() as users:
            if name in users and not replace:
                raise ValueError(f"name: user {name!r} already exists; remove it first, "
                                 "or replace its password and role (--replace)")
            users[name] = {"role": role, "hash": stored, "created": created}
        return User(name, role, created)

    def remove(self, name: str) -> None:
        """Remove the account ``name``.

        Raises
        ------
        UserNotFoundError
            No account of that name.
        """
        canonical = normalize_name(name)
        with self._changing() as users:
            if canonical not in users:
                raise UserNotFoundError(f"no user {canonical!r} in {self.path}")
            del users[canonical]

    def get(self, name: str) -> User | None:
        """The account ``name`` (case-insensitive), or None; an invalid name is None too."""
        try:
            canonical = normalize_name(name)
        except ValueError:
            return None
        entry = self._read().get(canonical)
        return None if entry is None else User(canonical, entry["role"], entry["created"])

    def list(self) -> list[User]:
        """All accounts, sorted by name (never the hashes)."""
        return [User(name, entry["role"], entry["created"]) for name, entry in sorted(self._read().items())]

    def verify(self, name: str, password: str) -> User | None:
        """The account if ``password`` is its password, else None.

        Takes about the same time whether or not the name exists (an
        unknown name is checked against a dummy hash). A hash made with
        weaker parameters than the current ones is replaced after a success.
        """
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            password = ""
        try:
            canonical = normalize_name(name)
        except ValueError:
            canonical = None
        entry = self._read().get(canonical) if canonical else None
        if entry is None:
            verify_password(password, _DUMMY_HASH)
            return None
        if not verify_password(password, entry.get("hash", "")):
            return None
        if needs_rehash(entry["hash"]):
            self._rehash(canonical, entry["hash"], password)
        return User(canonical, entry["role"], entry["created"])

    def _rehash(self, name: str, old: str, password: str) -> None:
        try:
            new = hash_password(password)
            with self._changing() as users:
                if users.get(name, {}).get("hash") == old:  # not changed meanwhile
                    users[name]["hash"] = new
        except OSError:  # a read-only folder must not stop a login; the old hash still works
            pass


# --------------------------------------------------------------------------- sessions

#: A session ends after this long without a request (a working day) ...
IDLE_TIMEOUT_S = 8 * 3600.0
#: ... and at the latest this long after login.
ABSOLUTE_TIMEOUT_S = 12 * 3600.0
#: Sessions kept at most (the oldest is dropped beyond; a bound on memory, far above any team).
MAX_SESSIONS = 10_000


@dataclass
class Session:
    """A logged-in user.

    Attributes
    ----------
    token
        The ``session`` cookie's value: 256 random bits, URL-safe base64.
    csrf_token
        The ``csrf_token`` cookie's value, to be repeated in the
        ``X-CSRF-Token`` header of every POST.
    user
        Canonical user name.
    role
        ``"editor"`` or ``"publisher"``.
    created
        Login time, seconds since the epoch (the store's clock).
    expires
        When the session ends unless used before: the earlier of the last
        use + idle timeout and login + absolute limit (updated by each
        :meth:`SessionStore.get`).
    """

    token: str
    csrf_token: str
    user: str
    role: str
    created: float
    expires: float


class SessionStore:
    """Sessions in memory, safe to use from several threads.

    Parameters
    ----------
    idle_timeout_s
        A session unused this long ends (default :data:`IDLE_TIMEOUT_S`).
    absolute_timeout_s
        A session ends this long after login however used (default
        :data:`ABSOLUTE_TIMEOUT_S`).
    clock
        Seconds since the epoch (default :func:`time.time`); tests inject one.
    """

    def __init__(self, *, idle_timeout_s: float = IDLE_TIMEOUT_S, absolute_timeout_s: float = ABSOLUTE_TIMEOUT_S,
                 clock: Callable[[], float] = time.time, max_sessions: int = MAX_SESSIONS) -> None:
        if not (idle_timeout_s > 0 and absolute_timeout_s > 0):
            raise ValueError("idle_timeout_s and absolute_timeout_s: must be > 0 seconds")
        self.idle_timeout_s, self.absolute_timeout_s = float(idle_timeout_s), float(absolute_timeout_s)
        self.max_sessions = max_sessions
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def _expiry(self, created: float, now: float) -> float:
        return min(now + self.idle_timeout_s, created + self.absolute_timeout_s)

    def create(self, user: User) -> Session:
        """Open a session for ``user`` (after :meth:`UserStore.verify`); return it."""
        now = self._clock()
        session = Session(token=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32), user=user.name,
                          role=user.role, created=now, expires=self._expiry(now, now))
        with self._lock:
            self._purge(now)
            while len(self._sessions) >= self.max_sessions:  # dicts keep insertion order: oldest first
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its idle time restarts), or None; an expired one is removed."""
        if not token or not isinstance(token, str):
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now >= session.expires:
                del self._sessions[token]
                return None
            session.expires = self._expiry(session.created, now)
            return session

    def drop(self, token: str | None) -> None:
        """End the session of ``token`` (logout); unknown tokens are ignored."""
        if token:
            with self._lock:
                self._sessions.pop(token, None)

    def drop_user(self, name: str) -> int:
        """End every session of user ``name`` (e.g. the account was removed); return how many."""
        with self._lock:
            tokens = [t for t, s in self._sessions.items() if s.user == name]
            for token in tokens:
                del self._sessions[token]
        return len(tokens)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._sessions)

    def _purge(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if now >= s.expires]:
            del self._sessions[token]


# --------------------------------------------------------------------------- login rate limit

#: Failed logins allowed per user name and per client address within :data:`WINDOW_S`.
MAX_FAILURES = 5
#: Length of the sliding window, in seconds.
WINDOW_S = 300.0


class LoginLimiter:
    """Refuse logins after too many failures for a user name or a client address.

    Usage: ``wait = limiter.retry_after(name, address)``; if ``wait > 0``
    answer 429 with ``Retry-After: ceil(wait)`` without checking the
    password; else verify, then :meth:`failure` or :meth:`success`.

    Parameters
    ----------
    max_failures
        Failures allowed within the window (default :data:`MAX_FAILURES`);
        the next attempt is refused.
    window_s
        Sliding window, seconds (default :data:`WINDOW_S`).
    clock
        Monotonic seconds (default :func:`time.monotonic`); tests inject one.
    """

    #: Keys tracked before stale ones are swept (a bound on memory under a spray of names).
    SWEEP_ABOVE = 10_000

    def __init__(self, *, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or not window_s > 0:
            raise ValueError("max_failures: must be >= 1, window_s: must be > 0 seconds")
        self.max_failures, self.window_s = int(max_failures), float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    @staticmethod
    def _keys(name: str | None, address: str | None) -> list[tuple[str, str]]:
        keys = []
        if name:
            keys.append(("user", str(name).strip().lower()[:128]))
        if address:
            keys.append(("address", str(address)[:128]))
        return keys

    def _recent(self, key: tuple[str, str], now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def retry_after(self, name: str | None, address: str | None) -> float:
        """Seconds to wait before the next attempt for ``name`` from ``address``; 0.0 when allowed now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(name, address):
                stamps = self._recent(key, now)
                if stamps is not None and len(stamps) >= self.max_failures:
                    # allowed again when the oldest failure that counts leaves the window
                    wait = max(wait, stamps[-self.max_failures] + self.window_s - now)
        return wait

    def allowed(self, name: str | None, address: str | None) -> bool:
        """Whether an attempt for ``name`` from ``address`` may be checked now."""
        return self.retry_after(name, address) <= 0

    def failure(self, name: str | None, address: str | None) -> None:
        """Record a failed login (wrong password or unknown name)."""
        now = self._clock()
        with self._lock:
            if len(self._failures) > self.SWEEP_ABOVE:
                for key in list(self._failures):
                    self._recent(key, now)
            for key in self._keys(name, address):
                stamps = self._failures.setdefault(key, deque(maxlen=self.max_failures))
                stamps.append(now)

    def success(self, name: str | None, address: str | None = None) -> None:
        """Record a successful login: the user name's failures are forgotten (the address's are kept)."""
        with self._lock:
            for key in self._keys(name, None):
                self._failures.pop(key, None)


# --------------------------------------------------------------------------- audit log

#: File name of the audit log inside the registry folder, and of its lock file.
AUDIT_FILE, AUDIT_LOCK = "audit.jsonl", ".audit.lock"

#: Actions written by sectorize (others are accepted: the list documents, it does not restrict).
AUDIT_ACTIONS: tuple[str, ...] = ("login", "login_failed", "logout", "save", "publish", "rerun", "reoptimise",
                                  "demand upload", "users add", "users remove")

#: Keys never accepted in an entry's ``what`` (at any depth): secrets have no place in a log.
_SECRET_KEY = re.compile(r"pass(word|wd)?|hash|token|secret|cookie|salt", re.IGNORECASE)


def _check_what(value: Any, path: str = "what") -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be text, not {key!r}")
            if _SECRET_KEY.search(key):
                raise ValueError(f"{path}.{key}: secrets (passwords, hashes, tokens) are never written to the audit log")
            _check_what(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_what(item, f"{path}[{i}]")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise ValueError(f"{path}: {type(value).__name__} cannot be written to the audit log (JSON values only)")


class AuditLog:
    """Who did what, appended to ``folder/audit.jsonl`` (one JSON object per line).

    Each entry is ``{"at": ISO 8601 UTC, "user", "role", "action", "what": {...}}``.
    Lines are appended with one write, flushed and synced to disk, under an
    exclusive file lock: concurrent processes never interleave or lose
    lines. Nothing is ever rewritten or removed.

    Parameters
    ----------
    folder
        The registry folder; it must exist.
    clock
        Seconds since the epoch (default :func:`time.time`).
    """

    def __init__(self, folder: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder for the audit log; "
                                    "create the registry first with `sectorize plans add`")
        self.path = self.folder / AUDIT_FILE
        self._lock_path = self.folder / AUDIT_LOCK
        self._clock = clock

    def append(self, user: str | None, role: str | None, action: str, what: Mapping[str, Any] | None = None) -> dict:
        """Append one entry and return it.

        Parameters
        ----------
        user
            Who: the account name, or the operating-system login for
            command-line actions; None when unknown (a failed login keeps the
            name tried in ``what``).
        role
            The account's role, or None (anonymous, command line).
        action
            What, e.g. ``"save"``, ``"publish"``, ``"login"`` (see :data:`AUDIT_ACTIONS`).
        what
            Details: plan ids, dates, counts. Never passwords, tokens or
            patient-level data; keys that look like secrets are refused.

        Raises
        ------
        ValueError
            ``action`` is empty or too long, or ``what`` holds a secret-like
            key or a value JSON cannot hold.
        """
        if not isinstance(action, str) or not action.strip() or len(action) > 64:
            raise ValueError(f"action: {action!r} must be non-empty text of at most 64 characters")
        what = dict(what or {})
        _check_what(what)
        entry = {"at": _utc_now_iso(self._clock), "user": user, "role": role, "action": action, "what": what}
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        with _file_lock(self._lock_path):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size and not self._ends_with_newline():
                    line = b"\n" + line  # a line torn by a crash stays alone; this entry stays whole
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        return entry

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def read(self, limit: int | None = None) -> list[dict]:
        """The entries, oldest first (newest last); with ``limit``, only the last ``limit``.

        A line that cannot be read (torn by a crash) appears as an entry
        with action ``"unreadable line"`` and its line number, so a gap in
        the record is visible rather than silently skipped.
        """
        if not self.path.exists():
            return []
        with _file_lock(self._lock_path, shared=True):
            data = self.path.read_bytes()
        entries = []
        for number, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
            except ValueError:
                entry = {"at": None, "user": None, "role": None, "action": "unreadable line", "what": {"line": number}}
            entries.append(entry)
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return entries


# --------------------------------------------------------------------------- web helpers

#: Cookie holding the session token (``HttpOnly``: scripts cannot read it).
SESSION_COOKIE = "session"
#: Cookie holding the CSRF token (readable by the page's script, which repeats it in :data:`CSRF_HEADER`).
CSRF_COOKIE = "csrf_token"
#: Request header that must repeat the CSRF cookie on every POST except the login.
CSRF_HEADER = "X-CSRF-Token"


def check_csrf(cookie_value: str | None, header_value: str | None, *, expected: str | None = None) -> bool:
    """Whether a state-changing request passes the double-submit check.

    Parameters
    ----------
    cookie_value
        The request's ``csrf_token`` cookie.
    header_value
        The request's ``X-CSRF-Token`` header.
    expected
        The session's :attr:`Session.csrf_token`, when there is a session:
        the header must then equal it too (a cookie planted by another
        sub-domain does not pass).

    Returns
    -------
    bool
        True when both values are present, non-empty and equal (compared in
        constant time), and equal to ``expected`` when given.
    """
    if not (isinstance(cookie_value, str) and isinstance(header_value, str) and cookie_value and header_value):
        return False
    ok = hmac.compare_digest(cookie_value.encode("utf-8"), header_value.encode("utf-8"))
    if expected is not None:
        ok = hmac.compare_digest(str(expected).encode("utf-8"), header_value.encode("utf-8")) and ok
    return ok


def session_cookie(session: Session, *, secure: bool = False) -> dict[str, Any]:
    """Keyword arguments of Starlette's ``Response.set_cookie`` for the session cookie.

    ``HttpOnly``, ``SameSite=Strict``, ``Path=/``; ``secure`` adds ``Secure``
    (set it when the app is served over HTTPS). No ``Max-Age``: the browser
    forgets the cookie when it closes, and the server ends the session
    earlier when idle or too old (:class:`SessionStore`).
    """
    return {"key": SESSION_COOKIE, "value": session.token, "path": "/", "httponly": True,
            "samesite": "strict", "secure": secure}


def csrf_cookie(session: Session, *, secure: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``Response.set_cookie`` for the CSRF cookie (readable by scripts, ``SameSite=Strict``)."""
    return {"key": CSRF_COOKIE, "value": session.csrf_token, "path": "/", "httponly": False,
            "samesite": "strict", "secure": secure}


def cleared_cookies() -> list[dict[str, Any]]:
    """Keyword arguments of ``Response.delete_cookie`` for both cookies (logout)."""
    return [{"key": SESSION_COOKIE, "path": "/", "httponly": True, "samesite": "strict"},
            {"key": CSRF_COOKIE, "path": "/", "samesite": "strict"}]
