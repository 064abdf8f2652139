"""Who may change which submissions folder: the owners file and the pull-request check.

A submission pull request may change only files `submissions/<org>__<model>/<id>.json` and
`<id>.parquet`, and only in folders whose org the pull request's author may write:

- the org is in the owners file (`.github/submission-owners.json`) and lists the author's login;
- or the author is one of the file's `maintainers` (any org folder);
- or the org is *not* in the owners file and equals the author's login (a personal org: anyone may
  start `submissions/<login>__<model>/`; only that login may change it afterwards).

Logins and org names compare case-insensitively (GitHub logins are case-insensitive, and two folders
that differ only in letter case collide on macOS and Windows checkouts), but a mapped org must be
spelled as the owners file spells it. Deleting or renaming a file is checked like adding one, on both
sides of a rename; a copy is checked on its new side (the source is unchanged). Anything outside
`submissions/` (code, workflows, the owners file itself) is refused: those changes go through a
maintainer's separate pull request. Symbolic links are refused where they can be seen: a type change
(`T`), a mode in `git diff --raw` output, or the pull request's checkout (`check_checkout`).

The owners file::

    {"schema": 1,
     "orgs": {"harness-zoo": ["harness-maintainers"], "my-lab": ["alice", "bob"]},
     "maintainers": ["carol"]}

`orgs` maps an org (as spelled in folder names) to the GitHub logins that may change its folders;
`maintainers` may change every org's folders. Unknown keys are refused. CI reads the file from the
base commit, never from the pull request.

Everything here is a pure function of its arguments except `load_owners`, `list_submission_files`
and `check_checkout`, which read the files they are given.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import HarnessError

OWNERS_FILE = ".github/submission-owners.json"
OWNERS_SCHEMA = 1
SUBMISSIONS = "submissions"

# GitHub logins: letters, digits and hyphens, at most 39 characters; apps end in "[bot]".
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}(?:\[bot\])?")
# The safe names of harness.schema (SAFE_NAME), used for both halves of a folder name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(?:json|parquet)")
_STATUS = re.compile(r"(?P<kind>[AMDT])|(?P<pair>[RC])(?P<score>[0-9]{1,3})")
_RAW_META = re.compile(
    r":(?P<old>[0-7]{6}) (?P<new>[0-7]{6}) [0-9a-f]+(?:\.\.\.)? [0-9a-f]+(?:\.\.\.)? (?P<status>\S+)"
)
_REGULAR_FILE = "100644"
_ABSENT = "000000"
_MODES = {"100755": "an executable file", "120000": "a symbolic link", "160000": "a submodule", "040000": "a folder"}
_VERBS = {
    "A": "add files to",
    "M": "modify files in",
    "D": "delete files from",
    "T": "change file types in",
    "C": "copy files into",
}
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_SEPARATE_PR = "send code, workflow and owners-file changes as a separate pull request, reviewed by a maintainer"


class Change(NamedTuple):
    """One line of `git diff --name-status`: status (A, M, D, T, R<score>, C<score>), path, and the
    old path of a rename or copy (git prints it first; here it comes last). `modes` (old, new) is
    known only from `git diff --raw` output."""

    status: str
    path: str
    old_path: str | None = None
    modes: tuple[str, str] | None = None


@dataclass(frozen=True)
class Problem:
    """A reason to refuse the pull request: `what` is wrong, `where` (a path), `fix` (what to do)."""

    what: str
    where: str
    fix: str

    def one_line(self) -> str:
        return f"{self.what} [at {self.where}] -> {self.fix}"


class SubmissionOwners(BaseModel):
    """`.github/submission-owners.json`: which GitHub logins may change which org's folders."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    schema_version: int = Field(alias="schema", description=f"format version, {OWNERS_SCHEMA}")
    orgs: dict[str, list[str]] = Field(description="org (as spelled in folder names) -> logins that may change it")
    maintainers: list[str] = Field(description="logins that may change every org's folders")

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != OWNERS_SCHEMA:
            raise ValueError(f"unsupported schema {value}; this harness reads schema {OWNERS_SCHEMA}")
        return value

    @field_validator("orgs")
    @classmethod
    def _valid_orgs(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for org, logins in value.items():
            # No "__" and no trailing "_": the org of folder "<org>__<model>" is then what precedes its
            # first "__", so a folder cannot be read as belonging to another org than its submission's.
            if not _NAME.fullmatch(org) or "__" in org or org.endswith("_"):
                raise ValueError(
                    f"org {org!r} is not a safe name (letters, digits, '.', '_', '-'; no '__', no trailing '_')"
                )
            if org.casefold() in seen:
                raise ValueError(f"orgs {seen[org.casefold()]!r} and {org!r} differ only in letter case")
            seen[org.casefold()] = org
            if not logins:
                raise ValueError(f"org {org!r} lists no login (maintainers need no entry)")
            _check_logins(logins, f"org {org!r}")
        return value

    @field_validator("maintainers")
    @classmethod
    def _valid_maintainers(cls, value: list[str]) -> list[str]:
        _check_logins(value, "maintainers")
        return value

    def spelling(self, org: str) -> str | None:
        """The owners file's spelling of `org` (compared case-insensitively), or None when it is not mapped."""
        return next((mapped for mapped in self.orgs if mapped.casefold() == org.casefold()), None)

    def is_maintainer(self, login: str) -> bool:
        return login.casefold() in {name.casefold() for name in self.maintainers}


def _check_logins(logins: list[str], where: str) -> None:
    for login in logins:
        if not _LOGIN.fullmatch(login):
            raise ValueError(f"{where}: {login!r} is not a GitHub login")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:  # json.loads would keep the last one silently: a grant a reviewer might not see
        raise ValueError(f"duplicate keys {duplicates}")
    return dict(pairs)


def load_owners(path: Path) -> SubmissionOwners:
    """Read and validate an owners file; every problem is a HarnessError naming the file."""
    fix = f"pass the base commit's {OWNERS_FILE} with --owners (format: CONTRIBUTING.md)"
    if not path.is_file():
        raise HarnessError("the owners file does not exist", where=str(path), fix=fix)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
        return SubmissionOwners.model_validate(raw)
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}" for item in error.errors()
        )
        raise HarnessError(f"invalid owners file: {details}", where=str(path), fix=fix) from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise HarnessError(f"invalid owners file: {error}", where=str(path), fix=fix) from None


def _validated_login(author: str) -> str:
    if not _LOGIN.fullmatch(author):
        raise HarnessError(
            f"{author!r} is not a GitHub login",
            where="--author",
            fix="pass the pull request author's login (github.event.pull_request.user.login)",
        )
    return author


# ----------------------------------------------------------------------------- git diff output


def _unquote(token: str, where: str) -> str:
    """A path as git prints it: as is, or C-quoted ("...") when it holds unusual bytes (core.quotePath)."""
    if not token.startswith('"'):
        return token
    if len(token) < 2 or not token.endswith('"'):
        raise _malformed(where, f"unterminated quoted path {token[:80]!r}")
    body, out, index = token[1:-1], bytearray(), 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out += char.encode("utf-8")
            index += 1
            continue
        escape = body[index + 1 : index + 2]
        if escape in _C_ESCAPES:
            out.append(_C_ESCAPES[escape])
            index += 2
        elif re.fullmatch(r"[0-3][0-7]{2}", body[index + 1 : index + 4]):
            out.append(int(body[index + 1 : index + 4], 8))
            index += 4
        else:
            raise _malformed(where, f"unknown escape in quoted path {token[:80]!r}")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(where, f"quoted path {token[:80]!r} is not UTF-8") from None


def _malformed(where: str, reason: str) -> HarnessError:
    return HarnessError(
        f"not `git diff --name-status` output: {reason}",
        where=where,
        fix="write the changes with `git diff --name-status -M BASE HEAD` (one change a line, fields separated by tabs)",
    )


def parse_changes(text: str, source: str = "changes") -> list[Change]:
    """Parse `git diff --name-status -M` output (or `git diff --raw -M`, which adds the file modes).

    One change a line, fields separated by tabs: `A|M|D|T<TAB>path` or `R|C<score><TAB>old<TAB>new`.
    Blank lines are skipped; anything else malformed (another status, a missing or extra path, a
    score over 100, a bad quoted path) is a HarnessError naming `source:line`.
    """
    changes = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): it also splits at \x1c, \u2028...
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{source}:{number}"
        head, *fields = line.split("\t")
        modes = None
        if head.startswith(":"):
            meta = _RAW_META.fullmatch(head)
            if meta is None:
                raise _malformed(where, f"bad `git diff --raw` fields {head[:80]!r}")
            head, modes = meta["status"], (meta["old"], meta["new"])
        status = _STATUS.fullmatch(head)
        if status is None:
            raise _malformed(where, f"unknown status {head[:20]!r} (expected A, M, D, T, R<score> or C<score>)")
        if status["pair"] and int(status["score"]) > 100:
            raise _malformed(where, f"similarity score {status['score']} is over 100")
        expected = 2 if status["pair"] else 1
        if len(fields) != expected:
            raise _malformed(where, f"status {head} takes {expected} path(s), the line has {len(fields)}")
        paths = [_unquote(field, where) for field in fields]
        if any(not path for path in paths):
            raise _malformed(where, "empty path")
        if status["pair"]:
            changes.append(Change(head, paths[1], paths[0], modes))
        else:
            changes.append(Change(head, paths[0], None, modes))
    return changes


# ----------------------------------------------------------------------------- the check


def _show(path: str) -> str:
    """A path safe to print in a terminal or CI log (no control characters from untrusted names)."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


def split_folder(folder: str) -> tuple[str, str] | None:
    """(org, model) of a folder named `<org>__<model>`, split at the first "__"; None when it is not one."""
    org, separator, model = folder.partition("__")
    if not separator or not _NAME.fullmatch(org) or not _NAME.fullmatch(model):
        return None
    return org, model


def ownership_reason(org: str, author: str, owners: SubmissionOwners) -> str | None:
    """Why `author` may change folders of `org` ("owner", "maintainer", "personal org"), or None.

    Does not check the org's spelling: see `check_pull_request`.
    """
    if owners.is_maintainer(author):
        return "maintainer"
    mapped = owners.spelling(org)
    if mapped is not None:
        return "owner" if author.casefold() in {login.casefold() for login in owners.orgs[mapped]} else None
    return "personal org" if org.casefold() == author.casefold() else None


def _sides(change: Change) -> list[tuple[str, str]]:
    """(path, verb) for every path the change touches."""
    kind = change.status[0]
    if kind == "R":
        assert change.old_path is not None
        return [(change.old_path, "move files out of"), (change.path, "move files into")]
    return [(change.path, _VERBS[kind])]


def _check_path(path: str, verb: str, author: str, owners: SubmissionOwners) -> list[Problem]:
    where = _show(path)
    if path == OWNERS_FILE:
        return [
            Problem(f"changes the owners file {OWNERS_FILE}", where, "only a maintainer's own pull request edits it")
        ]
    if not path.startswith(f"{SUBMISSIONS}/"):
        return [Problem(f"changes a file outside {SUBMISSIONS}/", where, _SEPARATE_PR)]
    parts = path.split("/")
    if len(parts) != 3:
        return [
            Problem(
                f"is not a file directly inside a {SUBMISSIONS}/<org>__<model>/ folder",
                where,
                "keep each submission's .json and .parquet side by side in its model's folder, no subfolders",
            )
        ]
    _, folder, name = parts
    split = split_folder(folder)
    if split is None:
        return [
            Problem(
                f"folder {_show(folder)!r} is not named <org>__<model>",
                where,
                "name it <org>__<model> (letters, digits, '.', '_', '-'), as `harness submit` does",
            )
        ]
    problems = []
    if not _FILE.fullmatch(name):
        problems.append(
            Problem(
                f"{_show(name)!r} is not a submission file name",
                where,
                "only <submission-id>.json and <submission-id>.parquet (letters, digits, '.', '_', '-'; no leading dot)",
            )
        )
    org = split[0]
    mapped = owners.spelling(org)
    if mapped is not None and mapped != org:
        problems.append(
            Problem(
                f"org {org!r} is spelled {mapped!r} in {OWNERS_FILE}",
                where,
                f"use the folder {mapped}__{split[1]} (folder names differing only in case collide)",
            )
        )
    if ownership_reason(org, author, owners) is None:
        if mapped is not None:
            problems.append(
                Problem(
                    f"{author} may not {verb} the folders of org {mapped!r} (its owners: {', '.join(owners.orgs[mapped])})",
                    where,
                    f"submit under an org you own (submissions/{author}__<model>/ is yours), or ask an owner of {mapped!r}",
                )
            )
        else:
            problems.append(
                Problem(
                    f"{author} may not {verb} the folders of org {org!r}: it is not in {OWNERS_FILE} and is not your login",
                    where,
                    f"use your login as the org (submissions/{author}__<model>/), or ask a maintainer to add "
                    f"{org!r} with your login to {OWNERS_FILE}",
                )
            )
    return problems


def _check_modes(change: Change) -> list[Problem]:
    if change.modes is None:
        return []
    problems = []
    for mode in change.modes:
        if mode not in (_REGULAR_FILE, _ABSENT):
            kind = _MODES.get(mode, f"mode {mode}")
            problems.append(
                Problem(
                    f"is {kind}, not a plain file", _show(change.path), "commit the plain file itself (mode 100644)"
                )
            )
    return problems


def _case_collisions(changes: Sequence[Change], head_paths: Iterable[str], owners: SubmissionOwners) -> list[Problem]:
    """Changed paths whose org, folder or file name differs only in letter case from another one."""
    written = [change.path for change in changes if change.status[0] != "D"]
    universe = {path for path in (*head_paths, *written) if path.startswith(f"{SUBMISSIONS}/")}
    spellings: dict[tuple[str, str], set[str]] = {}
    for path in universe:
        parts = path.split("/")
        if len(parts) < 2:
            continue
        split = split_folder(parts[1])
        keys = [("folder", parts[1])] + ([("file", path)] if len(parts) > 2 else [])
        if split is not None and owners.spelling(split[0]) is None:  # mapped orgs: the spelling rule checks them
            keys.insert(0, ("org", split[0]))
        for level, name in keys:
            spellings.setdefault((level, name.casefold()), set()).add(name)
    problems = []
    for path in sorted(set(written)):
        parts = path.split("/")
        if not path.startswith(f"{SUBMISSIONS}/") or len(parts) < 2:
            continue
        split = split_folder(parts[1])
        candidates = [("org", split[0] if split else ""), ("folder", parts[1]), ("file", path)]
        for level, name in candidates:
            others = sorted(spellings.get((level, name.casefold()), set()) - {name})
            if name and others:
                problems.append(
                    Problem(
                        f"{level} {_show(name)!r} differs only in letter case from {', '.join(map(_show, others))}",
                        _show(path),
                        "use the existing spelling (such names collide on case-insensitive file systems)",
                    )
                )
                break
    return problems


def _as_change(change: tuple[str, ...]) -> Change:
    if len(change) not in (2, 3):
        raise HarnessError(
            f"unknown change {change!r}", where="changes", fix="pass (status, path) or (status, path, old_path)"
        )
    return Change(change[0], change[1], change[2] if len(change) == 3 else None)


def check_pull_request(
    changes: Sequence[Change | tuple[str, ...]],
    author: str,
    owners: SubmissionOwners,
    head_paths: Iterable[str] = (),
) -> list[Problem]:
    """Every reason to refuse a pull request by `author` that makes `changes`; empty when it may go on.

    `changes` are `parse_changes` output or (status, path[, old_path]) tuples. `head_paths` lists the
    files under submissions/ in the pull request's head (unchanged ones too), so that a new name
    differing only in case from an existing one is caught; without it only the changes are compared.
    """
    author = _validated_login(author)
    normalized = [change if isinstance(change, Change) else _as_change(change) for change in changes]
    problems: list[Problem] = []
    for change in normalized:
        if not _STATUS.fullmatch(change.status) or (change.status[0] in "RC") != (change.old_path is not None):
            raise HarnessError(
                f"unknown change {change!r}", where="changes", fix="use parse_changes on `git diff --name-status`"
            )
        if change.status == "T":
            problems.append(
                Problem(
                    "changes the file's type (e.g. into a symbolic link)",
                    _show(change.path),
                    "commit plain files only (mode 100644)",
                )
            )
        problems.extend(_check_modes(change))
        for path, verb in _sides(change):
            problems.extend(_check_path(path, verb, author, owners))
    problems.extend(_case_collisions(normalized, head_paths, owners))
    return problems


# ----------------------------------------------------------------------------- the checkout (files on disk)


def list_submission_files(root: Path) -> list[str]:
    """Every file (and symbolic link) under root/submissions/, as repository paths; links are not followed."""
    top = root / SUBMISSIONS
    if not top.is_dir() or top.is_symlink():
        return []
    found = []
    for folder, dirnames, filenames in os.walk(top, followlinks=False):
        for name in [*filenames, *(d for d in dirnames if (Path(folder) / d).is_symlink())]:
            found.append((Path(folder) / name).relative_to(root).as_posix())
    return sorted(found)


def check_checkout(changes: Sequence[Change], root: Path) -> list[Problem]:
    """Refuse written paths that are symbolic links (or lie under one), or not plain files, in `root`.

    `git diff --name-status` does not show file modes; the pull request's checkout does.
    """
    problems = []
    for change in changes:
        if change.status[0] == "D" or not change.path.startswith(f"{SUBMISSIONS}/"):
            continue
        parts = change.path.split("/")
        where = _show(change.path)
        links = [i for i in range(1, len(parts) + 1) if (root.joinpath(*parts[:i])).is_symlink()]
        if links:
            link = "/".join(parts[: links[0]])
            problems.append(Problem(f"{_show(link)} is a symbolic link", where, "commit the plain file itself"))
        elif not root.joinpath(*parts).is_file():
            problems.append(
                Problem(
                    "is not a plain file in the pull request's checkout",
                    where,
                    "pass the checkout of the pull request's head with --root",
                )
            )
    return problems
