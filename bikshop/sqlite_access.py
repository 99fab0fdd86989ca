"""Why a SQLite database cannot be opened, told in terms of its files: their owner and mode,
the user bikshop runs as, and the command that fixes them.

SQLite says only "unable to open database file". The usual cause is a command run as root
(``flask --app bikshop db upgrade`` without ``sudo -u bikshop``): the file it creates is root's,
mode 600 (bikshop takes the group's and others' access off), and the service user can no
longer open it. That will not fix itself, so the commands that stop on it exit 3, as on a
setting bikshop refuses: systemd (``RestartPreventExitStatus=3``) stops restarting the unit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click
from sqlalchemy.engine import make_url

# SQLite's words for a file it could not open, and for one it could open read-only only.
_UNOPENED = "unable to open database file"
_READ_ONLY = "attempt to write a readonly database"


class DatabaseFilesError(click.ClickException):
    """A SQLite database whose files this user cannot open: one line, exit 3 (restarting will
    not help; the files' owner must change)."""

    exit_code = 3


def database_path(url: str) -> str | None:
    """The absolute path of the SQLite file ``url`` names; None for another backend or an
    in-memory or URI-form (``file:``) database."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    return os.path.abspath(database)


def access_problem(error: BaseException, url: str, *, unopened: bool = False) -> str | None:
    """Why ``error`` (SQLite's "unable to open database file" or, unless ``unopened``,
    "attempt to write a readonly database") happened, when its files say: ``files_problem``'s
    line. None for any other error, backend, or when the files look usable.

    ``unopened`` is what the commands exit 3 on: a file the user cannot open at all. One it
    can only read is a read-only database, which they report as before (exit 1)."""
    error = getattr(error, "orig", None) or error
    wanted = (_UNOPENED,) if unopened else (_UNOPENED, _READ_ONLY)
    if not any(words in str(error) for words in wanted):
        return None
    path = database_path(url)
    return files_problem(path) if path else None


def files_problem(path: str) -> str | None:
    """What keeps this process from reading and writing the SQLite database at ``path`` (the
    file, its -wal, -shm and -writer.lock, and its folder, where SQLite makes those), naming
    each file's owner and mode, the user running this, and what to run; None when nothing
    does."""
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        return f"{path} is a folder, not a database file: move it away, or point the URL at a file"
    if not os.path.isdir(folder):
        return f"its folder {folder} does not exist (or is not a folder)"
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return (
            f"{folder} is read-only here: a read-only mount, or, under the systemd unit, a "
            "folder missing from ReadWritePaths="
        )
    files = [folder] + [
        name
        for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-writer.lock")
        if os.path.lexists(name)
    ]
    blocked = [
        name
        for name in files
        if not os.access(name, os.W_OK | (os.X_OK if name == folder else os.R_OK))
    ]
    if not blocked:
        return None
    uid, user, group = os.geteuid(), _user(os.geteuid()), _group(os.getegid())
    described = ", ".join(f"{name} ({_owner_and_mode(name)})" for name in blocked)
    foreign = [name for name in files if _uid(name) not in (uid, None)]
    steps = []
    if foreign:
        steps.append(f"chown {user}:{group} {' '.join(foreign)}")
    if any(name not in foreign for name in blocked):
        steps.append(f"chmod u+rwX {' '.join(name for name in blocked if name not in foreign)}")
    return (
        f"bikshop runs here as {user}, which cannot read and write {described}; as root, "
        f"run: {' && '.join(steps)}"
    )


def root_warning(url: str) -> str | None:
    """A warning for a command run as root on a SQLite database whose folder (or, before it
    exists, the nearest folder above it) belongs to another user, the service's: the files
    root creates there (the database, its -wal and -shm while it is open) are root's, mode
    600, and the service cannot open them. None otherwise (also when everything is root's, as
    in a container that runs bikshop as root)."""
    path = database_path(url)
    if path is None or os.geteuid() != 0:
        return None
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    owner = _uid(str(folder))
    if owner in (None, 0):
        return None
    user = _user(owner)
    return (
        f"bikshop: warning: running as root on a SQLite database in {folder}, which is "
        f"{user}'s: what this creates there is root's, mode 600, and bikshop's service cannot "
        f"open it; run bikshop's commands as {user} (sudo -E -u {user} …)"
    )


def _uid(name: str) -> int | None:
    try:
        return os.stat(name).st_uid
    except OSError:
        return None


def _owner_and_mode(name: str) -> str:
    try:
        info = os.stat(name)
    except OSError as exc:
        return f"cannot be looked at: {exc.strerror}"
    return f"owner {_user(info.st_uid)}, mode {stat.S_IMODE(info.st_mode):o}"


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
