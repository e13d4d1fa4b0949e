"""The built-in `repo-scan` agent (the `github_analysis` job type).

It clones the project's repository (any git URL or a local path) into the data
directory, or fetches it when a clone is there already, and turns what it finds into
suggestions: recent activity and contributors, TODO and FIXME comments, large files,
and a missing README, licence, tests or CI configuration.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from synthbox.errors import InputError
from synthbox.orchestration.agents.base import AgentCall, AgentOutcome, run_process

ACTIVE_DAYS = 90
LARGE_FILE_BYTES = 1_000_000
SCANNED_FILE_BYTES = 2_000_000  # larger files are not read for TODOs
MARKERS = re.compile(rb"\b(TODO|FIXME)\b")
TEST_DIRS = {"test", "tests", "spec", "specs", "__tests__", "testing"}
TEST_FILE = re.compile(r"(^test_.*\.py$|_test\.(py|go|rb)$|\.(test|spec)\.[jt]sx?$|"
                       r"Tests?\.(java|kt|cs)$|_spec\.rb$)")
CI_PATHS = (".github/workflows", ".gitlab-ci.yml", ".circleci", "Jenkinsfile",
            ".travis.yml", "azure-pipelines.yml", ".ci", ".drone.yml")
# no ext:: or fd:: transports: a repository URL must not run commands
GIT_ENV = {"GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh", "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}


def _git(call: AgentCall, *args: str, cwd: Path | None = None) -> str:
    """Run git within the agent's time; its process is killed when the time is up."""
    code, out, err = run_process(call, ["git", *args], None, {**os.environ, **GIT_ENV},
                                 None if cwd is None else str(cwd))
    if code != 0:
        raise GitFailed(f"git {args[0]} failed: {err.decode(errors='replace').strip()[-500:]}")
    return out.decode("utf-8", errors="replace")


class GitFailed(Exception):
    pass


def _origin(call: AgentCall, checkout: Path) -> str | None:
    try:
        return _git(call, "remote", "get-url", "origin", cwd=checkout).strip()
    except GitFailed:
        return None


def local_path(repository: str) -> Path | None:
    """The directory `repository` names on this host, or None for a remote URL (a scheme
    other than file://, or git's scp form `host:path`)."""
    if "://" in repository:
        try:
            parts = urlsplit(repository)
        except ValueError as exc:  # "Invalid IPv6 URL": a [ that opens no address
            raise InputError("repository", f"is not a URL git can read ({exc})") from None
        return Path(unquote(parts.path)) if parts.scheme.lower() == "file" else None
    head = repository.split("/", 1)[0]
    if ":" in head:  # user@host:path, as git reads it
        return None
    return Path(repository)


def check_repository_location(repository: str | None, roots: Sequence[Path]) -> None:
    """A local repository must lie under one of `roots` (links resolved first)."""
    path = None if repository is None else local_path(repository)
    if path is None:
        return
    try:
        real = path.expanduser().resolve()
    except (ValueError, OSError, RuntimeError):  # a NUL, a loop, an unknown ~user
        raise InputError("repository", "is not a path this host can read") from None
    if not any(real.is_relative_to(root.expanduser().resolve()) for root in roots):
        raise InputError("repository", f"a local path must be under repository_roots "
                                       f"({', '.join(map(str, roots)) or 'none set'})")


def checkout_dir(data_path: Path, project_id: int) -> Path:
    """Where a project's clone lives (by id: a slug may be reused by another project)."""
    return data_path / "repos" / str(project_id)


def scan_repository(call: AgentCall) -> AgentOutcome:
    if not call.repository:
        return AgentOutcome("failed", error="repository: the project has no repository")
    assert call.workdir is not None
    try:
        check_repository_location(call.repository, call.repository_roots)
    except InputError as exc:
        return AgentOutcome("failed", error=str(exc))
    call.workdir.mkdir(parents=True, exist_ok=True)
    checkout = call.workdir / "checkout"
    with (call.workdir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one scan of a project at a time on this host
        try:
            if (checkout / ".git").is_dir() and _origin(call, checkout) == call.repository:
                _git(call, "fetch", "--quiet", "origin", cwd=checkout)
                _git(call, "reset", "--quiet", "--hard", "FETCH_HEAD", cwd=checkout)
            else:  # first scan, or the project now names another repository
                shutil.rmtree(checkout, ignore_errors=True)
                _git(call, "clone", "--quiet", "--", call.repository, str(checkout))
            facts = _facts(call, checkout, int(call.config.get("largeFileBytes",
                                                               LARGE_FILE_BYTES)))
        except GitFailed as exc:
            return AgentOutcome("failed", error=str(exc))
    return AgentOutcome("succeeded", json.dumps(facts), None, [], _suggestions(facts))


def _facts(call: AgentCall, checkout: Path, large_bytes: int) -> dict[str, Any]:
    files = [f for f in _git(call, "ls-files", "-z", cwd=checkout).split("\0") if f]
    log = _git(call, "log", f"--since={ACTIVE_DAYS} days ago", "--format=%aN",
               cwd=checkout).splitlines()
    last = _git(call, "log", "-1", "--format=%at", cwd=checkout).strip()
    markers: Counter[str] = Counter()
    per_file: Counter[str] = Counter()
    large = []
    inside = checkout.resolve()
    for name in files:
        path = checkout / name
        # a committed link is not followed: its target may be a host file outside
        if path.is_symlink() or not path.resolve().is_relative_to(inside):
            continue
        try:
            size = path.lstat().st_size
        except OSError:
            continue
        if size > large_bytes:
            large.append({"path": name, "bytes": size})
        if size <= SCANNED_FILE_BYTES and path.is_file():
            found = MARKERS.findall(path.read_bytes())
            if found:
                markers.update(m.decode() for m in found)
                per_file[name] += len(found)
    top = {name.split("/", 1)[0] for name in files}
    lower_top = {name.lower() for name in top}
    return {
        "files": len(files),
        "commits": len(log),
        "contributors": sorted(Counter(log)),
        "days": ACTIVE_DAYS,
        "lastCommitAt": int(last) * 1000 if last else None,
        "todo": markers["TODO"], "fixme": markers["FIXME"],
        "markerFiles": [{"path": p, "count": n} for p, n in per_file.most_common(10)],
        "largeFiles": sorted(large, key=lambda f: -f["bytes"]),
        "hasReadme": any(n.startswith("readme") for n in lower_top),
        "hasLicence": any(n.startswith(("license", "licence", "copying")) for n in lower_top),
        "hasTests": any(TEST_DIRS & set(name.split("/")[:-1])
                        or TEST_FILE.search(name.rsplit("/", 1)[-1]) for name in files),
        "hasCi": any(name == ci or name.startswith(ci + "/") for name in files
                     for ci in CI_PATHS),
    }


def _suggestions(facts: dict[str, Any]) -> list[dict[str, Any]]:
    found = []

    def suggest(kind: str, title: str, **detail: Any) -> None:
        found.append({"title": title, "kind": kind, **detail})

    people = facts["contributors"]
    if facts["commits"] == 0:
        suggest("activity", f"No commits in the last {facts['days']} days",
                lastCommitAt=facts["lastCommitAt"])
    else:
        suggest("activity", f"{facts['commits']} commits by {len(people)} "
                            f"contributor{'s' if len(people) != 1 else ''} in the last "
                            f"{facts['days']} days", contributors=people)
        if len(people) == 1:
            suggest("bus-factor", f"Only {people[0]} committed in the last "
                                  f"{facts['days']} days; share the knowledge")
    if facts["todo"] or facts["fixme"]:
        suggest("todo", f"Resolve {facts['todo']} TODO and {facts['fixme']} FIXME comments",
                todo=facts["todo"], fixme=facts["fixme"], files=facts["markerFiles"])
    for large in facts["largeFiles"][:20]:
        suggest("large-file", f"Large file {large['path']} ({large['bytes']:,} bytes): "
                              "consider Git LFS or removing it", **large)
    for present, kind, title in (
            (facts["hasReadme"], "readme", "Add a README"),
            (facts["hasLicence"], "licence", "Add a licence file"),
            (facts["hasTests"], "tests", "Add tests"),
            (facts["hasCi"], "ci", "Add continuous integration")):
        if not present:
            suggest(kind, title)
    return found
