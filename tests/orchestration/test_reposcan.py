"""The built-in repo-scan agent over real git repositories."""

from __future__ import annotations

import os

from synthbox.orchestration import projects
from tests.orchestration.conftest import (
    _engine,
    _finished_job,
    _git,
)


def test_github_analysis_finds_what_the_repository_holds(engine_builder, tmp_path):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Demo\n")
    (repo / "src" / "app.py").write_text("# TODO: split\n# TODO: name\nx = 1  # FIXME\n")
    (repo / "src" / "util.py").write_text("# TODO later\n")
    (repo / "data.bin").write_bytes(os.urandom(1_500_000))
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "src" / "more.py").write_text("y = 2\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "second", author="Bob <bob@example.com>")

    engine, service = _engine(engine_builder, {"attempts": 1}, repository_roots=str(tmp_path))
    projects.create_project({"slug": "demo", "repository": str(repo)}, roots=[tmp_path])
    run = service.trigger("demo", {"jobType": "github_analysis"}, "manual")
    assert _finished_job(engine, run["jobId"])["state"] == "completed"
    found = service.get_run("demo", run["jobId"])
    by_kind = {s["detail"]["kind"]: s for s in found["suggestions"]}
    assert set(by_kind) == {"activity", "todo", "large-file", "licence", "tests", "ci"}
    assert by_kind["activity"]["detail"]["contributors"] == ["Ann", "Bob"]
    assert by_kind["activity"]["title"] == "2 commits by 2 contributors in the last 90 days"
    assert (by_kind["todo"]["detail"]["todo"], by_kind["todo"]["detail"]["fixme"]) == (3, 1)
    assert by_kind["todo"]["detail"]["files"][0] == {"path": "src/app.py", "count": 3}
    assert by_kind["large-file"]["detail"]["path"] == "data.bin"
    assert found["result"]["suggestionsCreated"] == 6

    # a second scan fetches into the clone it made, and sees the new commit
    (repo / "LICENSE").write_text("MIT\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_app.py").write_text("def test(): pass\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "licence and tests")
    again = service.trigger("demo", {"jobType": "github_analysis"}, "manual")
    assert _finished_job(engine, again["jobId"])["state"] == "completed"
    kinds = {s["detail"]["kind"] for s in service.get_run("demo", again["jobId"])["suggestions"]}
    assert kinds == {"activity", "todo", "large-file", "ci"}


def test_a_changed_repository_is_cloned_afresh(engine_builder, tmp_path):
    repos = []
    for name, files in (("first", {"README.md": "x"}), ("second", {"LICENSE": "MIT"})):
        repo = tmp_path / name
        repo.mkdir()
        _git(repo, "init", "-q", "-b", "main")
        for file, text in files.items():
            (repo / file).write_text(text)
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", name)
        repos.append(repo)
    engine, service = _engine(engine_builder, {"attempts": 1}, repository_roots=str(tmp_path))
    projects.create_project({"slug": "moving", "repository": str(repos[0])}, roots=[tmp_path])
    run = service.trigger("moving", {"jobType": "github_analysis"}, "manual")
    _finished_job(engine, run["jobId"])
    kinds = {s["detail"]["kind"] for s in service.get_run("moving", run["jobId"])["suggestions"]}
    assert "licence" in kinds and "readme" not in kinds
    projects.update_project("moving", {"repository": str(repos[1])}, roots=[tmp_path])
    again = service.trigger("moving", {"jobType": "github_analysis"}, "manual")
    _finished_job(engine, again["jobId"])
    kinds = {s["detail"]["kind"] for s in service.get_run("moving", again["jobId"])["suggestions"]}
    assert "readme" in kinds and "licence" not in kinds
    projects.delete_project("moving", engine.data_path)
    assert not (engine.data_path / "repos").exists() or not any(
        (engine.data_path / "repos").iterdir()), "the clone goes with its project"
