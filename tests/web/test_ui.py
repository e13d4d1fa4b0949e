"""The browser admin UI in a real headless Chromium (Debian's `chromium`, driven by
Playwright), against a real serve process. Screenshots of every page land in
`test-artifacts/ui/`."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.conftest import ROOT, Serve, remember_secret, wait_for

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("REQUIRE_BROWSER_TESTS"):
        raise RuntimeError(f"the UI tests need Debian's chromium at {CHROMIUM}")
    pytest.skip("the UI tests need Debian's chromium (apt-get install chromium)",
                allow_module_level=True)
SHOTS = ROOT / "test-artifacts" / "ui"
PASSWORDS = {"boss": "ui admin password 1", "watcher": "ui viewer password 1"}
XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"


@pytest.fixture(scope="module")
def server(served):
    return served({"SYNTHBOX_QUEUES": json.dumps({"orchestration": {"rate_limit_max": 0},
                                                  "ui-config": {"handler": "remote"}})},
                  users={"boss": ("admin", PASSWORDS["boss"]),
                         "watcher": ("viewer", PASSWORDS["watcher"])})


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Watched:
    """A page that records dialogs (none may open) and console complaints."""

    def __init__(self, page):
        self.page = page
        self.dialogs: list[str] = []
        self.console: list[str] = []
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message),
                                          dialog.dismiss()))
        page.on("console", lambda message: self.console.append(message.text)
                if message.type in ("error", "warning") else None)


@pytest.fixture
def open_page(browser, server):
    contexts = []

    def make(name: str | None = "boss", javascript: bool = True, width: int = 1280):
        context = browser.new_context(base_url=f"http://127.0.0.1:{server.port}",
                                      java_script_enabled=javascript,
                                      viewport={"width": width, "height": 900})
        contexts.append(context)
        watched = Watched(context.new_page())
        if name is not None:
            sign_in(watched.page, name)
        return watched

    yield make
    for context in contexts:
        context.close()


def sign_in(page, name):
    page.goto("/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def add_job(server, body, queue="diagnostics"):
    status, reply = server.request("POST", f"/api/v1/queues/{queue}/jobs", body)
    assert status == 201, reply
    return reply["data"]["id"]


def job_state(server, job_id):
    return server.request("GET", f"/api/v1/admin/jobs/{job_id}")[1]["data"]["state"]


def settle(server, job_id, state):
    wait_for(lambda: job_state(server, job_id) == state, 20, message=f"job {job_id} {state}")


# -- sign-in ---------------------------------------------------------------------------------

def test_first_run_setup_sign_in_and_sign_out(browser, tmp_path):
    serve = Serve(tmp_path / "fresh").start()
    try:
        log_file = serve.data_dir / "synthbox.log"
        wait_for(lambda: log_file.exists() and "first admin" in log_file.read_text())
        link = re.search(r"create the first admin at (http://\S+)", log_file.read_text()).group(1)
        remember_secret(link.rsplit("/", 1)[1])
        remember_secret("the very first admin pw")
        context = browser.new_context()
        page = context.new_page()
        base = f"http://127.0.0.1:{serve.port}"
        page.goto(link)
        shot(page, "setup")
        page.get_by_label("Name").fill("founder")
        page.get_by_label("Password (at least 10 characters)").fill("the very first admin pw")
        page.get_by_label("Password again").fill("the very first admin pw")
        page.get_by_role("button", name="Create").click()
        page.wait_for_url(re.compile(r"/$"))
        assert page.get_by_role("heading", name="Dashboard").is_visible()
        assert "founder (admin)" in page.locator("header").inner_text()
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r"/login"))
        shot(page, "login")
        page.goto(base + "/")
        assert "/login" in page.url, "signed out for real"
        page.get_by_label("Name").fill("founder")
        page.get_by_label("Password").fill("the very first admin pw")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/$"))
        page.goto(link)
        assert page.locator("body").inner_text().strip() != "", "a used link shows a page"
        assert "Create" not in page.content() or "founder" in page.content()
        context.close()
    finally:
        serve.stop()


# -- dashboard -------------------------------------------------------------------------------

def _dashboard_counts(page):
    return {cell.get_attribute("data-count"): int(cell.inner_text())
            for cell in page.locator("[data-count]").all()}


def _api_counts(server):
    queues = server.request("GET", "/api/v1/queues")[1]["data"]
    return {f"{q['name']}.{state}": count for q in queues for state, count in q["stats"].items()
            if state != "total"}


def test_the_dashboard_matches_the_api_and_updates_without_a_reload(server, open_page):
    for _ in range(3):
        add_job(server, {"name": "noop"})
    settle(server, add_job(server, {"name": "noop"}), "completed")
    watched = open_page()
    page = watched.page
    page.goto("/")
    assert _dashboard_counts(page) == _api_counts(server)
    assert page.locator("svg.chart").count() == 3
    page.evaluate("window.notReloaded = true")
    before = _dashboard_counts(page)["diagnostics.completed"]
    job_id = add_job(server, {"name": "sleep", "data": {"seconds": 0.5}})
    settle(server, job_id, "completed")
    wait_for(lambda: _dashboard_counts(page)["diagnostics.completed"] == before + 1, 10,
             message="the count changes on its own")
    assert page.evaluate("window.notReloaded") is True
    assert _dashboard_counts(page) == _api_counts(server)
    instance = page.locator("td[data-live^='instance.']").first.inner_text()
    assert instance.endswith("s ago")
    started = page.locator("time").first
    assert "UTC" not in started.inner_text() and started.get_attribute("title"), \
        "the viewer's time zone, the exact time on hover"
    shot(page, "dashboard")
    # a hidden tab stops asking
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url)
            if "/ui/live/" in request.url else None)
    page.wait_for_timeout(2500)
    assert polls, "a visible tab refreshes"
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {value: true});
                             document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_timeout(300)
    polls.clear()
    page.wait_for_timeout(4500)
    assert polls == [], "a hidden tab does not poll"
    assert not watched.dialogs and not watched.console


# -- queue and job ---------------------------------------------------------------------------

def test_a_failed_job_is_found_by_its_error_retried_and_completes(server, open_page):
    job_id = add_job(server, {"name": "fail", "data": {
        "times": 1, "message": "flux capacitor overheated 7731"}, "opts": {"attempts": 1}})
    settle(server, job_id, "failed")
    watched = open_page()
    page = watched.page
    page.goto("/queues/diagnostics")
    page.get_by_label("Search id, jobId, name, data or error").fill("capacitor overheated 7731")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.jobs tbody tr")
    assert rows.count() == 1 and "flux capacitor overheated 7731" in rows.first.inner_text()
    shot(page, "queue-search")
    rows.first.get_by_role("link", name=job_id).click()
    page.wait_for_url(re.compile(rf"/jobs/{job_id}$"))
    assert "failed for good: flux capacitor overheated 7731" in page.locator(
        ".timeline").inner_text()
    shot(page, "job-failed")
    page.get_by_role("button", name="Retry", exact=True).click()
    assert "is waiting to run again" in page.locator(".notice").inner_text()
    wait_for(lambda: len(server.request("GET", f"/api/v1/admin/jobs/{job_id}")[1]["data"][
        "errors"]) == 2, 20, message="the retry ran (and failed as planned, attempt 1 again)")
    page.reload()
    page.get_by_label("Data (JSON)").fill(json.dumps({"times": 0}))
    page.get_by_role("button", name="Save and retry").click()
    assert "has new data" in page.locator(".notice").inner_text()
    settle(server, job_id, "completed")
    page.reload()
    assert page.locator("h1 .state").inner_text() == "completed"
    assert "completed" in page.locator(".timeline").inner_text()
    shot(page, "job-completed")
    assert not watched.dialogs and not watched.console


def test_bulk_retry_shows_the_count_before_it_acts(server, open_page):
    ids = [add_job(server, {"name": "fail", "data": {"times": 1, "message": "bulk marker 5511"},
                            "opts": {"attempts": 1}}) for _ in range(3)]
    for job_id in ids:
        settle(server, job_id, "failed")
    page = open_page().page
    page.goto("/queues/diagnostics?search=bulk+marker+5511")
    page.get_by_role("button", name=re.compile("Retry failed jobs matching")).click()
    assert page.get_by_role("heading").first.inner_text() == "Retry 3 jobs?"
    assert page.locator("[data-bulk-count]").inner_text() == "3"
    assert all(job_state(server, job_id) == "failed" for job_id in ids), "nothing yet"
    shot(page, "bulk-confirm")
    page.get_by_role("button", name="Yes, retry 3").click()
    assert "Retried 3 job(s)." in page.locator(".notice").inner_text()
    for job_id in ids:  # each ran again (and failed again: its data says to fail once)
        wait_for(lambda j=job_id: len(server.request("GET", f"/api/v1/admin/jobs/{j}")[1][
            "data"]["errors"]) == 2, 20)


def test_pausing_a_queue_from_the_ui_stops_its_jobs(server, open_page):
    page = open_page().page
    page.goto("/queues/diagnostics")
    page.get_by_role("button", name="Pause queue").click()
    assert "is paused" in page.locator(".notice").inner_text()
    job_id = add_job(server, {"name": "noop"})
    time.sleep(2)
    assert job_state(server, job_id) == "waiting"
    page.get_by_role("button", name="Resume queue").click()
    assert "running again" in page.locator(".notice").inner_text()
    settle(server, job_id, "completed")


def test_core_actions_work_with_javascript_off(server, open_page):
    job_id = add_job(server, {"name": "fail", "data": {"times": 1}, "opts": {"attempts": 1}})
    settle(server, job_id, "failed")
    page = open_page(javascript=False).page
    page.goto(f"/jobs/{job_id}")
    assert "UTC" in page.locator("time").first.inner_text(), "server time without script"
    page.get_by_label("Data (JSON)").fill(json.dumps({"times": 0}))
    page.get_by_role("button", name="Save and retry").click()
    assert "has new data" in page.locator(".notice").inner_text()
    settle(server, job_id, "completed")
    page.goto("/queues/diagnostics")
    page.get_by_role("button", name="Pause queue").click()
    assert "is paused" in page.locator(".notice").inner_text()
    page.get_by_role("button", name="Resume queue").click()
    assert "running again" in page.locator(".notice").inner_text()


# -- untrusted text --------------------------------------------------------------------------

def test_job_text_is_shown_as_text_everywhere(server, open_page):
    job_id = add_job(server, {"name": "fail", "data": {"times": 1, "message": XSS, "note": XSS},
                              "opts": {"attempts": 1}})
    settle(server, job_id, "failed")
    with sqlite3.connect(server.data_dir / "synthbox.db") as db:  # any queue's job names
        db.execute("UPDATE job SET name=? WHERE id=?", (XSS, int(job_id)))
    watched = open_page()
    page = watched.page
    for path in ("/", "/queues/diagnostics", "/queues/diagnostics?state=failed",
                 f"/queues/diagnostics?search={urllib.parse.quote('onerror=alert')}",
                 f"/jobs/{job_id}"):
        page.goto(path)
        if path != "/":
            assert page.get_by_text(XSS, exact=False).count() >= 1, path
            assert page.locator("img[src='x']").count() == 0, path
    shot(page, "job-xss")
    time.sleep(1)
    assert watched.dialogs == []
    assert not [m for m in watched.console if "Content Security Policy" in m], watched.console


# -- roles -----------------------------------------------------------------------------------

def test_a_viewer_sees_no_actions_and_a_forged_post_is_refused(server, open_page):
    job_id = add_job(server, {"name": "fail", "data": {"times": 1}, "opts": {"attempts": 1}})
    settle(server, job_id, "failed")
    page = open_page("watcher").page
    page.goto("/queues/diagnostics")
    assert page.get_by_role("button", name="Pause queue").count() == 0
    assert page.get_by_role("button", name=re.compile("Retry|Delete|Clean")).count() == 0
    page.goto(f"/jobs/{job_id}")
    assert page.get_by_role("button", name=re.compile("Retry|Delete|Save")).count() == 0
    page.goto("/projects")
    assert page.get_by_role("button", name="Create project").count() == 0
    shot(page, "viewer-job")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path in ("/queues/diagnostics/pause", f"/jobs/{job_id}/retry", "/projects"):
        answer = page.request.post(path, form={"csrf_token": token, "slug": "x"},
                                   headers={"Origin": f"http://127.0.0.1:{server.port}"})
        assert answer.status == 403, path
    assert job_state(server, job_id) == "failed"
    assert page.request.get("/users").status == 403


# -- projects, emails, admin pages ------------------------------------------------------------

def test_a_project_made_in_the_ui_runs_from_run_now(server, open_page):
    watched = open_page()
    page = watched.page
    page.goto("/projects")
    page.get_by_label("Slug (lowercase letters, digits, dashes)").fill("ui-demo")
    page.get_by_label("Name").fill("UI demo")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url(re.compile(r"/projects/ui-demo$"))
    page.get_by_text("Add an agent").click()
    page.get_by_label("Agent slug").fill("advisor")
    page.get_by_label("Agent kind").select_option("command")
    page.get_by_label(re.compile("^Configuration")).fill(json.dumps(
        {"command": ["echo", json.dumps({"suggestions": ["Write the changelog"]})]}))
    page.get_by_role("button", name="Add agent").click()
    assert "Agent advisor added." in page.locator(".notice").inner_text()
    page.get_by_text("Add a webhook").click()
    page.get_by_label("Webhook slug").fill("push")
    page.get_by_role("button", name="Add webhook").click()
    secret = page.locator("code.secret").inner_text()
    remember_secret(secret)
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    shot(page, "project-hook-secret")
    page.get_by_role("button", name="Disable").click()  # an action from the secret page
    page.wait_for_url(re.compile(r"/projects/ui-demo$"))
    page.get_by_role("button", name="Enable").click()
    page.wait_for_url(re.compile(r"/projects/ui-demo$"))
    assert secret not in page.content(), "the secret is shown once"
    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r"/projects/ui-demo/runs/\d+$"))
    run_id = page.url.rsplit("/", 1)[1]
    wait_for(lambda: server.request("GET", f"/api/v1/projects/ui-demo/runs/{run_id}")[1][
        "data"]["state"] == "succeeded", 20)
    page.reload()
    assert "Write the changelog" in page.locator("ul.items").first.inner_text()
    shot(page, "run")
    page.goto("/projects/ui-demo")
    assert "Write the changelog" in page.locator("[data-items=suggestions]").inner_text()
    shot(page, "project")
    assert not watched.dialogs and not watched.console


def test_a_queue_of_your_own_made_in_the_form_runs_jobs(server, open_page):
    """The form: a refused definition comes back on it naming the field (nothing made);
    a good one runs jobs; it is changed and deleted there. A settings-file queue is
    shown read-only."""
    watched = open_page()
    page = watched.page
    page.goto("/")
    page.get_by_role("link", name="New queue of your own…").click()
    page.get_by_label("Queue name").fill("ui-thumbs")
    page.get_by_label("Handler").select_option("http")
    page.get_by_role("button", name="Create queue").click()
    assert page.locator("#form-error").inner_text() == \
        "queues.ui-thumbs.url: required: an http:// or https:// URL"
    assert page.locator("input[name=url]").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Queue name").input_value() == "ui-thumbs"  # kept
    assert server.request("GET", "/api/v1/queues/ui-thumbs")[0] == 404
    shot(page, "queue-form-error")
    page.get_by_label("Handler").select_option("command")
    page.get_by_label(re.compile("^Command")).fill(
        'python3 -c "import json; print(json.dumps({\'ok\': True}))"')
    page.get_by_label(re.compile("^Timeout")).fill("30s")
    page.get_by_role("button", name="Create queue").click()
    page.wait_for_url(re.compile(r"/queues/ui-thumbs/definition$"))
    assert "Queue ui-thumbs created" in page.locator(".notice").inner_text()
    job_id = add_job(server, {"name": "go", "data": {}}, queue="ui-thumbs")
    settle(server, job_id, "completed")
    assert server.request("GET", f"/api/v1/admin/jobs/{job_id}")[1]["data"][
        "returnvalue"] == {"ok": True}
    page.get_by_label(re.compile("^Concurrency")).fill("2")
    page.get_by_role("button", name="Save").click()
    assert "version 2" in page.locator("[data-source]").inner_text()
    shot(page, "queue-definition")
    page.get_by_role("button", name="Delete queue").click()
    page.wait_for_url(re.compile(r"/$"))
    assert server.request("GET", "/api/v1/queues/ui-thumbs")[0] == 404
    page.goto("/queues/ui-config/definition")
    assert "Defined in synthbox.toml" in page.locator("[data-source]").inner_text()
    assert page.get_by_role("button", name="Save").count() == 0
    # the refused form was answered 400, as it should be; nothing else complained
    assert not watched.dialogs and watched.console == [
        "Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]


def test_bad_form_input_is_a_message_on_the_page(server, open_page):
    page = open_page().page
    page.goto("/projects")
    page.get_by_label("Slug (lowercase letters, digits, dashes)").fill("fine-slug")
    page.get_by_label("Settings (JSON, optional)").fill("{not json")
    page.get_by_role("button", name="Create project").click()
    assert page.locator(".error").inner_text().startswith("settings: must be JSON")
    page.goto("/projects")
    assert "fine-slug" not in page.locator("table").inner_text(), "nothing half-written"


def test_an_email_body_is_shown_sandboxed(server, open_page):
    status, reply = server.request("POST", "/api/v1/emails", {
        "from": "app@synthbox.test", "to": ["ann@example.com"], "subject": "Hello " + XSS,
        "html": "<p>Hi</p><script>alert('mail')</script><img src=x onerror=alert(3)>",
        "text": "Hi"})
    assert status == 201, reply
    watched = open_page()
    page = watched.page
    page.goto("/emails")
    assert page.get_by_text("Hello " + XSS).count() == 1
    shot(page, "emails")
    page.get_by_role("link", name=reply["data"]["id"]).click()
    frame = page.locator("iframe.mail")
    assert frame.get_attribute("sandbox") == ""
    page.wait_for_timeout(500)
    assert watched.dialogs == []
    shot(page, "email")
    page.goto("/emails/compose")
    page.get_by_label("From (empty: the mail_from setting)").fill("app@synthbox.test")
    page.get_by_label("To (comma-separated)").fill("not an address")
    page.get_by_role("button", name="Queue it").click()
    assert page.locator(".error").inner_text().startswith("to")
    shot(page, "compose")
    for path, name in (("/emails/templates", "templates"),
                       ("/emails/suppressions", "suppressions")):
        page.goto(path)
        shot(page, name)
    page.get_by_label("Address or @domain").fill("@blocked.example")
    page.get_by_role("button", name="Suppress").click()
    assert "@blocked.example" in page.locator("table").inner_text()


def test_admin_pages_and_settings_mask_secrets(server, open_page):
    page = open_page().page
    page.goto("/tokens")
    page.get_by_label("Name").fill("ui-made")
    page.get_by_label("jobs:write").check()
    page.get_by_role("button", name="Create token").click()
    token = page.locator("code.secret").inner_text()
    remember_secret(token)
    assert token.startswith("sbx_")
    page.goto("/tokens")
    assert token not in page.content()
    shot(page, "tokens")
    for path, title in (("/users", "Users"), ("/audit", "Audit log"),
                        ("/settings", "Settings")):
        page.goto(path)
        assert page.locator("h1").inner_text() == title
        shot(page, path.strip("/"))
    page.goto("/alerts")
    page.get_by_text("Add a rule").click()
    page.get_by_label("Rule name").fill("ui-backlog")
    page.get_by_label("Kind").select_option("waiting")
    page.get_by_label("Threshold", exact=True).fill("100")
    page.get_by_role("button", name="Add rule").click()
    assert "Alert rule ui-backlog added." in page.locator(".notice").inner_text()
    assert "ui-backlog" in page.locator("table").first.inner_text()
    shot(page, "alerts")
    page.goto("/audit")
    assert "token.create" in page.locator("table").inner_text()


def test_the_layout_holds_at_phone_width_and_labels_are_there(server, open_page):
    page = open_page(width=390).page
    for path, name in (("/", "phone-dashboard"), ("/queues/diagnostics", "phone-queue"),
                       ("/projects", "phone-projects")):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
        shot(page, name)
        unlabelled = page.evaluate("""() => [...document.querySelectorAll(
            'input:not([type=hidden]), select, textarea')].filter(e => !e.labels.length)
            .map(e => e.name)""")
        assert unlabelled == [], (path, unlabelled)
    page.goto("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
