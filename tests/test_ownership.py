"""Who may change which submissions folder: pull requests simulated in a real git repository.

Each case commits a base (owners file, submission folders, some code), makes the pull request's
changes on a branch, and checks what `git diff --name-status -M base head` yields, with
`check_pull_request` and with `harness check-pr` (exit codes).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cli_helpers import run_cli

from harness.errors import HarnessError
from harness.ownership import (
    OWNERS_FILE,
    Change,
    SubmissionOwners,
    check_checkout,
    check_pull_request,
    list_submission_files,
    load_owners,
    parse_changes,
)

REPO = Path(__file__).resolve().parents[1]

OWNERS = {
    "schema": 1,
    "orgs": {"harness-zoo": ["zoo-keeper"], "bob-lab": ["bob"], "alice-lab": ["Alice", "alice-two"]},
    "maintainers": ["maint"],
}
BASE_FILES = [
    "submissions/harness-zoo__digits-mlp/z1.json",
    "submissions/harness-zoo__digits-mlp/z1.parquet",
    "submissions/bob-lab__m/b1.json",
    "submissions/bob-lab__m/b1.parquet",
    "submissions/alice-lab__m/a1.json",
    "submissions/alice-lab__m/a1.parquet",
    "submissions/Carol__old/c1.json",  # a personal org, created by its owner "carol"
    "harness/validation.py",
]


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True)
    return done.stdout


def write(repo: Path, path: str, text: str | None = None) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    # distinct contents, long enough that git pairs renames only with their own file
    target.write_text(text if text is not None else f"{path}\n" + "line of a submission file\n" * 20)


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, OWNERS_FILE, json.dumps(OWNERS, indent=2))
    for path in BASE_FILES:
        write(repo, path)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def open_pr(repo: Path, edit: Callable[[Path], None], *diff_options: str) -> str:
    edit(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "pr")
    return git(repo, "diff", *diff_options, "-M", "base", "HEAD")


def owners() -> SubmissionOwners:
    return SubmissionOwners.model_validate(OWNERS)


def head_paths(repo: Path) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", "HEAD", "submissions/").split()


def rm(*paths: str) -> Callable[[Path], None]:
    return lambda repo: git(repo, "rm", "-q", *paths)


def mv(old: str, new: str) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        (repo / new).parent.mkdir(parents=True, exist_ok=True)
        git(repo, "mv", old, new)

    return edit


def add(*paths: str) -> Callable[[Path], None]:
    return lambda repo: [write(repo, path) for path in paths] and None


def modify(*paths: str) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        for path in paths:
            with (repo / path).open("a") as handle:
                handle.write("an edited line\n")

    return edit


def grant(org: str, login: str) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        content = json.loads((repo / OWNERS_FILE).read_text())
        content["orgs"][org].append(login)
        (repo / OWNERS_FILE).write_text(json.dumps(content))

    return edit


def both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda repo: [edit(repo) for edit in edits] and None


def symlink(path: str, target: str) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        (repo / path).unlink(missing_ok=True)
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).symlink_to(target)

    return edit


@dataclass
class Case:
    name: str
    author: str
    edit: Callable[[Path], None]
    refused: list[str] = field(default_factory=list)  # one expected fragment per problem; empty: accepted
    cli_code: int | None = None  # when --root sees more than the name-status lines (symlinks)


CASES = [
    Case(
        "add in own org",
        "alice",
        add("submissions/alice-lab__m2/a2.json", "submissions/alice-lab__m2/a2.parquet"),
    ),
    Case(
        "modify and delete in own org",
        "alice-two",
        both(modify("submissions/alice-lab__m/a1.json"), rm("submissions/alice-lab__m/a1.parquet")),
    ),
    Case(
        "add in someone else's org",
        "alice",
        add("submissions/bob-lab__m2/x.json"),
        ["alice may not add files to the folders of org 'bob-lab' (its owners: bob)"],
    ),
    Case(
        "delete someone else's file",
        "alice",
        rm("submissions/bob-lab__m/b1.json"),
        ["alice may not delete files from the folders of org 'bob-lab'"],
    ),
    Case(
        "rename own file into another org",
        "alice",
        mv("submissions/alice-lab__m/a1.json", "submissions/bob-lab__m/a1.json"),
        ["alice may not move files into the folders of org 'bob-lab'"],
    ),
    Case(
        "rename someone else's file into own org",
        "alice",
        mv("submissions/bob-lab__m/b1.json", "submissions/alice-lab__m/b1.json"),
        ["alice may not move files out of the folders of org 'bob-lab'"],
    ),
    Case(
        "harness code beside a valid submission",
        "alice",
        both(add("submissions/alice-lab__m/a2.json"), modify("harness/validation.py")),
        ["changes a file outside submissions/ [at harness/validation.py]"],
    ),
    Case(
        "the owners file",
        "alice",
        grant("bob-lab", "alice"),
        [f"changes the owners file {OWNERS_FILE}"],
    ),
    Case(
        "harness code, even by a maintainer",
        "maint",
        modify("harness/validation.py"),
        ["changes a file outside submissions/"],
    ),
    Case("personal org", "alice", add("submissions/alice__my-model/x.json", "submissions/alice__my-model/x.parquet")),
    Case("personal org, login in another case", "alice", add("submissions/ALICE__my-model/x.json")),
    Case(
        "someone else's personal org",
        "alice",
        add("submissions/dave__m/x.json"),
        ["not in .github/submission-owners.json and is not your login"],
    ),
    Case(
        "someone else's existing personal org",
        "alice",
        rm("submissions/Carol__old/c1.json"),
        ["alice may not delete files from the folders of org 'Carol'"],
    ),
    Case("own existing personal org", "carol", add("submissions/Carol__old/c2.json")),
    Case(
        "own personal org in a second spelling",
        "carol",
        add("submissions/carol__new/x.json"),
        ["org 'carol' differs only in letter case from Carol"],
    ),
    Case(
        "mapped org in another case",
        "zoo-keeper",
        add("submissions/Harness-Zoo__new/z2.json"),
        ["org 'Harness-Zoo' is spelled 'harness-zoo'"],
    ),
    Case(
        "model folder in another case",
        "zoo-keeper",
        add("submissions/harness-zoo__Digits-MLP/z2.json"),
        ["folder 'harness-zoo__Digits-MLP' differs only in letter case from harness-zoo__digits-mlp"],
    ),
    Case(
        "file name in another case",
        "bob",
        add("submissions/bob-lab__m/B1.json"),
        ["file 'submissions/bob-lab__m/B1.json' differs only in letter case"],
    ),
    Case(
        "maintainer in any org",
        "Maint",
        both(add("submissions/bob-lab__m/b2.json"), rm("submissions/harness-zoo__digits-mlp/z1.parquet")),
    ),
    Case(
        "names that are not submission files",
        "alice",
        add(
            "submissions/alice-lab__m/sub/x.json",
            "submissions/alice-lab__m/.hidden.json",
            "submissions/alice-lab__m/notes.md",
            "submissions/alice-lab__m/X.JSON",
            "submissions/README.md",
            "submissions/alice-lab/x.json",
            "submissions/alice-lab___m/x.json",
        ),
        [
            "is not a file directly inside",
            "'.hidden.json' is not a submission file name",
            "'notes.md' is not a submission file name",
            "'X.JSON' is not a submission file name",
            "is not a file directly inside",
            "folder 'alice-lab' is not named <org>__<model>",
            "folder 'alice-lab___m' is not named <org>__<model>",
        ],
    ),
    Case(
        "a non-ASCII file name (quoted by git)",
        "alice",
        add("submissions/alice-lab__m/r\u00e9sultat.json"),
        ["'r\u00e9sultat.json' is not a submission file name"],
    ),
    Case(
        "a symbolic link (seen only in the checkout)",
        "alice",
        symlink("submissions/alice-lab__m/link.json", "../bob-lab__m/b1.json"),
        [],
        cli_code=2,
    ),
    Case(
        "a file turned into a symbolic link",
        "alice",
        symlink("submissions/alice-lab__m/a1.json", "a1.parquet"),
        ["changes the file's type"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_pull_request_end_to_end(case: Case, tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path)
    diff = open_pr(repo, case.edit, "--name-status")
    problems = check_pull_request(parse_changes(diff), case.author, owners(), head_paths(repo))
    text = "\n".join(problem.one_line() for problem in problems)
    assert len(problems) == len(case.refused), text
    for fragment in case.refused:
        assert fragment in text

    changes_file = tmp_path / "changes.txt"
    changes_file.write_text(diff)
    result = run_cli(
        capsys, monkeypatch, "check-pr", "--author", case.author, "--changes", str(changes_file),
        "--owners", str(repo / OWNERS_FILE), "--root", str(repo),
    )  # fmt: skip
    expected = case.cli_code if case.cli_code is not None else (2 if case.refused else 0)
    assert result.code == expected, result.err
    if result.code == 2:
        lines = [line for line in result.err.splitlines() if line.startswith("refused: ")]
        assert lines and all(" [at " in line and " -> " in line for line in lines)
        assert "may not be merged" in result.err
    else:
        assert "check-pr:" in result.out and result.err == ""


def test_renames_are_paired_by_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    diff = open_pr(repo, mv("submissions/bob-lab__m/b1.json", "submissions/alice-lab__m/b1.json"), "--name-status")
    assert parse_changes(diff) == [Change("R100", "submissions/alice-lab__m/b1.json", "submissions/bob-lab__m/b1.json")]


def test_case_collisions_need_the_head_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    diff = open_pr(repo, add("submissions/harness-zoo__Digits-MLP/z2.json"), "--name-status")
    assert check_pull_request(parse_changes(diff), "zoo-keeper", owners()) == []  # the changes alone look fine
    assert len(check_pull_request(parse_changes(diff), "zoo-keeper", owners(), head_paths(repo))) == 1
    assert sorted(head_paths(repo)) == list_submission_files(repo)


def test_symbolic_links_are_refused_from_the_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    diff = open_pr(repo, symlink("submissions/alice-lab__m/link.json", "../bob-lab__m/b1.json"), "--name-status")
    (problem,) = check_checkout(parse_changes(diff), repo)
    assert "submissions/alice-lab__m/link.json is a symbolic link" in problem.one_line()


def test_symbolic_link_folders_are_refused_from_the_checkout(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "submissions" / "alice-lab__m2").symlink_to("bob-lab__m")  # what a checkout of such a tree would hold
    changes = [Change("A", "submissions/alice-lab__m2/b1.json")]
    (problem,) = check_checkout(changes, repo)
    assert problem.what == "submissions/alice-lab__m2 is a symbolic link"


def test_modes_are_checked_from_raw_output(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)

    def make_executable(repo: Path) -> None:
        (repo / "submissions/alice-lab__m/a1.json").chmod(0o755)

    raw = open_pr(repo, make_executable, "--raw")
    assert raw.startswith(":100644 100755 ")
    (problem,) = check_pull_request(parse_changes(raw), "alice", owners())
    assert "is an executable file, not a plain file" in problem.what
    assert parse_changes(git(repo, "diff", "--name-status", "-M", "base", "HEAD")) == [
        Change("M", "submissions/alice-lab__m/a1.json")
    ]


def test_the_shipped_tree_passes_for_the_shipped_owners() -> None:
    shipped = load_owners(REPO / OWNERS_FILE)
    files = list_submission_files(REPO)
    assert files, "the repository ships submissions"
    additions = [Change("A", path) for path in files]
    owner = shipped.orgs["harness-zoo"][0]
    assert check_pull_request(additions, owner, shipped, files) == []
    assert check_pull_request(additions, "someone-else", shipped, files)


def test_tuples_are_accepted_as_changes() -> None:
    problems = check_pull_request(
        [
            ("A", "submissions/alice-lab__x/a.json"),
            ("R090", "submissions/alice-lab__x/b.json", "submissions/bob-lab__m/b.json"),
        ],
        "alice",
        owners(),
    )
    assert [problem.where for problem in problems] == ["submissions/bob-lab__m/b.json"]
    with pytest.raises(HarnessError, match="unknown change"):
        check_pull_request([("R100", "submissions/alice-lab__x/a.json")], "alice", owners())


@pytest.mark.parametrize("author", ["", "al ice", "-x" * 30, "alice\n", "alice;rm"])
def test_bad_author_logins_are_refused(author: str) -> None:
    with pytest.raises(HarnessError, match="is not a GitHub login"):
        check_pull_request([], author, owners())


# ----------------------------------------------------------------------------- parsing name-status lines


def test_parse_name_status_lines() -> None:
    text = (
        "A\tsubmissions/a__b/x.json\r\n\n"
        "M\tsubmissions/a__b/y.parquet\n"
        "D\tREADME.md\n"
        "T\tsubmissions/a__b/z.json\n"
        "R087\tsubmissions/a__b/old.json\tsubmissions/a__c/new.json\n"
        "C100\tsubmissions/a__b/x.json\tsubmissions/a__b/copy.json\n"
        'A\t"submissions/a__b/tab\\there\\303\\251.json"\n'  # git's C-quoting: a tab and UTF-8 octal bytes
    )
    assert parse_changes(text) == [
        Change("A", "submissions/a__b/x.json"),
        Change("M", "submissions/a__b/y.parquet"),
        Change("D", "README.md"),
        Change("T", "submissions/a__b/z.json"),
        Change("R087", "submissions/a__c/new.json", "submissions/a__b/old.json"),
        Change("C100", "submissions/a__b/copy.json", "submissions/a__b/x.json"),
        Change("A", "submissions/a__b/tab\there\u00e9.json"),
    ]
    assert parse_changes("") == []
    raw = ":100644 120000 1234567 89abcde T\tsubmissions/a__b/z.json\n"
    assert parse_changes(raw) == [Change("T", "submissions/a__b/z.json", None, ("100644", "120000"))]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A", "takes 1 path(s), the line has 0"),
        ("A\t", "empty path"),
        ("A\ta\tb", "takes 1 path(s), the line has 2"),
        ("A submissions/a__b/x.json", "unknown status"),
        ("R100\tonly-one", "takes 2 path(s), the line has 1"),
        ("R\ta\tb", "unknown status"),
        ("R101\ta\tb", "over 100"),
        ("Z\ta", "unknown status"),
        ("U\ta", "unknown status"),
        ("M100\ta", "unknown status"),
        ("a\tsubmissions/a__b/x.json", "unknown status"),
        ('A\t"unterminated', "unterminated quoted path"),
        ('A\t"bad \\q escape"', "unknown escape"),
        ('A\t"\\377\\376"', "is not UTF-8"),
        (":100644 100644 abc A\ta", "bad `git diff --raw` fields"),
        (":100644 1006 1234567 89abcde A\ta", "bad `git diff --raw` fields"),
    ],
)
def test_malformed_lines_are_refused_with_their_line(text: str, reason: str) -> None:
    with pytest.raises(HarnessError) as error:
        parse_changes("A\tsubmissions/a__b/ok.json\n\n" + text + "\n", "changes.txt")
    assert reason in error.value.what
    assert error.value.where == "changes.txt:3"


def test_control_characters_in_paths_are_printed_escaped() -> None:
    (problem,) = check_pull_request(parse_changes('A\t"docs/\\033[31mred"\n'), "alice", owners())
    assert "\x1b" not in problem.one_line() and "\\x1b[31mred" in problem.one_line()


# ----------------------------------------------------------------------------- the owners file


def test_the_shipped_owners_file_is_valid() -> None:
    shipped = load_owners(REPO / OWNERS_FILE)
    assert "harness-zoo" in shipped.orgs


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ({**OWNERS, "extra": 1}, "extra: Extra inputs are not permitted"),
        ({**OWNERS, "schema": 2}, "unsupported schema 2"),
        ({**OWNERS, "schema": "1"}, "schema: Input should be a valid integer"),
        ({**OWNERS, "schema": True}, "schema: Input should be a valid integer"),
        ({k: v for k, v in OWNERS.items() if k != "maintainers"}, "maintainers: Field required"),
        ({**OWNERS, "orgs": {"a__b": ["x"]}}, "is not a safe name"),
        ({**OWNERS, "orgs": {"lab_": ["x"]}}, "is not a safe name"),
        ({**OWNERS, "orgs": {"../up": ["x"]}}, "is not a safe name"),
        ({**OWNERS, "orgs": {"Lab": ["x"], "lab": ["y"]}}, "differ only in letter case"),
        ({**OWNERS, "orgs": {"lab": []}}, "lists no login"),
        ({**OWNERS, "orgs": {"lab": "alice"}}, "Input should be a valid list"),
        ({**OWNERS, "orgs": {"lab": ["not a login"]}}, "is not a GitHub login"),
        ({**OWNERS, "maintainers": ["x" * 40]}, "is not a GitHub login"),
    ],
)
def test_invalid_owners_files_are_refused(tmp_path: Path, content: object, reason: str) -> None:
    path = tmp_path / "owners.json"
    path.write_text(json.dumps(content))
    with pytest.raises(HarnessError, match="invalid owners file") as error:
        load_owners(path)
    assert reason in error.value.what
    assert error.value.where == str(path)


def test_owners_file_with_duplicate_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "owners.json"
    path.write_text('{"schema": 1, "orgs": {"lab": ["alice"], "lab": ["mallory"]}, "maintainers": []}')
    with pytest.raises(HarnessError, match=r"duplicate keys \['lab'\]"):
        load_owners(path)
    path.write_text("{not json")
    with pytest.raises(HarnessError, match="invalid owners file"):
        load_owners(path)


# ----------------------------------------------------------------------------- the command line


def test_check_pr_reads_stdin(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    owners_file = tmp_path / "owners.json"
    owners_file.write_text(json.dumps(OWNERS))
    monkeypatch.setattr(sys, "stdin", io.StringIO("A\tsubmissions/alice-lab__m/a.json\n"))
    result = run_cli(
        capsys, monkeypatch, "check-pr", "--author", "alice", "--changes", "-", "--owners", str(owners_file)
    )
    assert result.code == 0, result.err
    assert "alice-lab__m" in result.out and "owner" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--author", "alice", "--changes", "{changes}", "--owners", "{missing}"], "the owners file does not exist"),
        (["--author", "alice", "--changes", "{missing}", "--owners", "{owners}"], "cannot read the changes"),
        (["--author", "alice", "--changes", "{bad}", "--owners", "{owners}"], "{bad}:2"),
        (["--author", "not a login", "--changes", "{changes}", "--owners", "{owners}"], "is not a GitHub login"),
        (["--author", "alice", "--changes", "{changes}", "--owners", "{owners}", "--root", "{missing}"], "checkout"),
    ],
)
def test_check_pr_input_errors_exit_2(tmp_path: Path, capsys, monkeypatch, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    paths = {
        "owners": tmp_path / "owners.json",
        "changes": tmp_path / "changes.txt",
        "bad": tmp_path / "bad.txt",
        "missing": tmp_path / "missing",
    }
    paths["owners"].write_text(json.dumps(OWNERS))
    paths["changes"].write_text("A\tsubmissions/alice-lab__m/a.json\n")
    paths["bad"].write_text("A\tsubmissions/alice-lab__m/a.json\nA submissions/alice-lab__m/b.json\n")
    names = {key: str(value) for key, value in paths.items()}
    result = run_cli(capsys, monkeypatch, "check-pr", *[arg.format(**names) for arg in args])
    assert result.code == 2
    assert message.format(**names) in result.err
    assert result.err.count("\n") == 1  # one line
