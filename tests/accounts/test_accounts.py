"""Accounts, roles, JWTs, API tokens, sessions and the admin API, over real waitress."""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
import urllib.parse
from http.cookies import SimpleCookie

import jwt
import pytest

from tests.conftest import Serve, create_user, remember_secret, run_cli, wait_for

PASSWORDS = {"root": "correct horse battery", "ops": "operator password 1",
             "eve": "viewer password 12"}


@pytest.fixture(scope="module")
def server(served):
    return served(users={name: (role, PASSWORDS[name]) for name, role in (
        ("root", "admin"), ("ops", "operator"), ("eve", "viewer"))})


def login(server, name, password=None):
    status, reply = server.request("POST", "/api/v1/auth/login",
                                   {"name": name, "password": password or PASSWORDS[name]},
                                   token=None)
    assert status == 200, reply
    remember_secret(reply["data"]["accessToken"])
    remember_secret(reply["data"]["refreshToken"])
    return reply["data"]


class Browser:
    """A cookie jar over http.client, following no redirects (we check them)."""

    def __init__(self, server):
        self.server = server
        self.cookies: dict[str, str] = {}

    def request(self, method, path, form=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        body = urllib.parse.urlencode(form) if form is not None else None
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                **({"Content-Type": "application/x-www-form-urlencoded"} if form else {}),
                **(headers or {})}
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie(header)
            for key, morsel in cookie.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value
        conn.close()
        return response.status, response.headers, text

    def csrf(self, path):
        status, _, html = self.request("GET", path)
        assert status == 200, html
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


# -- every route is guarded -----------------------------------------------------------------

PUBLIC = {"/healthz", "/readyz", "/login", "/setup/<token>", "/static/<path:filename>",
          "/api/v1/auth/login", "/api/v1/auth/refresh",
          "/api/v1/hooks/<project>/<hook>",  # signed by HMAC, not a Bearer token
          "/api/v1/queues/<name>/webhook",  # the same
          "/metrics"}  # its own token, or loopback clients only


def test_every_route_needs_credentials_except_the_public_list(server):
    from synthbox.app import build_engine
    from synthbox.config import load_settings
    from synthbox.web import create_app

    engine = build_engine(load_settings({"data_dir": str(server.data_dir)}, env={}))
    try:
        rules = list(create_app(engine).url_map.iter_rules())
    finally:
        engine.close()
    values = {"name": "diagnostics", "job_id": "1", "token": "x", "filename": "synthbox.css"}
    checked = 0
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            path = rule.rule
            for key, value in values.items():
                path = re.sub(rf"<(?:\w+:)?{key}>", value, path)
            status, headers, _ = Browser(server).request(method, path)
            checked += 1
            if rule.rule in PUBLIC:
                assert status not in (401, 302), (method, rule.rule, status)
            elif rule.rule.startswith("/api/"):
                assert status == 401, (method, rule.rule, status)
            else:
                assert status == 302 and headers["Location"].startswith("/login"), (
                    method, rule.rule, status)
    assert checked >= 30


# -- JWTs -----------------------------------------------------------------------------------

def _forge(claims, key="another key, long enough for HS256 use", alg="HS256", headers=None):
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def test_jwt_matrix(server):
    pair = login(server, "root")
    good = pair["accessToken"]
    claims = jwt.decode(good, options={"verify_signature": False})
    assert set(claims) >= {"exp", "iat", "iss", "aud", "sub", "role", "jti"}
    assert jwt.get_unverified_header(good)["alg"] == "HS256"
    assert server.request("GET", "/api/v1/auth/me", token=good)[0] == 200

    unsigned = (base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
                + "." + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
                .decode() + ".")
    head, payload, signature = good.split(".")
    tampered_claims = {**claims, "role": "admin", "sub": "2"}
    tampered = ".".join([head, base64.urlsafe_b64encode(json.dumps(tampered_claims).encode())
                         .rstrip(b"=").decode(), signature])
    secret = (server.data_dir / "jwt-secret").read_text().strip()
    remember_secret(secret)
    now = time.time()
    bad = {
        "alg none": unsigned,
        "another key": _forge(claims),
        "expired": _forge({**claims, "iat": now - 7200, "exp": int(now - 3600)}, secret),
        "wrong aud": _forge({**claims, "aud": "someone-else"}, secret),
        "wrong iss": _forge({**claims, "iss": "evil"}, secret),
        "tampered payload": tampered,
        "refresh used as access": pair["refreshToken"],
    }
    for label, token in bad.items():
        status, reply = server.request("GET", "/api/v1/auth/me", token=token)
        assert status == 401, label
        assert reply["error"]["code"] == "unauthorized", label

    # revoked jti: logout ends this access token and its refresh token
    status, _ = server.request("POST", "/api/v1/auth/logout",
                               {"refreshToken": pair["refreshToken"]}, token=good)
    assert status == 200
    assert server.request("GET", "/api/v1/auth/me", token=good)[0] == 401
    assert server.request("POST", "/api/v1/auth/refresh",
                          {"refreshToken": pair["refreshToken"]}, token=None)[0] == 401


def test_refresh_rotates_and_a_replayed_refresh_token_ends_them_all(server):
    pair = login(server, "eve")
    status, reply = server.request("POST", "/api/v1/auth/refresh",
                                   {"refreshToken": pair["refreshToken"]}, token=None)
    assert status == 200
    fresh = reply["data"]
    remember_secret(fresh["refreshToken"])
    assert server.request("GET", "/api/v1/auth/me", token=fresh["accessToken"])[0] == 200
    replay = server.request("POST", "/api/v1/auth/refresh",
                            {"refreshToken": pair["refreshToken"]}, token=None)
    assert replay[0] == 401
    assert server.request("POST", "/api/v1/auth/refresh",
                          {"refreshToken": fresh["refreshToken"]}, token=None)[0] == 401


def test_password_change_ends_earlier_tokens(server, tmp_path):
    create_user(server.data_dir, "pat", "viewer", "first password 1")
    pair = login(server, "pat", "first password 1")
    remember_secret("second password 2")
    status, _ = server.request("POST", "/api/v1/auth/password",
                               {"currentPassword": "first password 1",
                                "newPassword": "second password 2"}, token=pair["accessToken"])
    assert status == 200
    assert server.request("GET", "/api/v1/auth/me", token=pair["accessToken"])[0] == 401
    assert server.request("POST", "/api/v1/auth/login",
                          {"name": "pat", "password": "first password 1"}, token=None)[0] == 401
    login(server, "pat", "second password 2")


# -- roles and scopes -----------------------------------------------------------------------

def test_role_matrix(server):
    viewer = login(server, "eve")["accessToken"]
    operator = login(server, "ops")["accessToken"]
    admin = login(server, "root")["accessToken"]
    job = server.request("POST", "/api/v1/queues/diagnostics/jobs",
                         {"name": "fail", "data": {"times": 5}}, token=operator)
    assert job[0] == 201
    job_id = job[1]["data"]["id"]
    wait_for(lambda: server.request("GET", f"/api/v1/admin/jobs/{job_id}", token=viewer)[1]
             ["data"]["state"] == "failed", message="failed job")

    assert server.request("POST", f"/api/v1/admin/jobs/{job_id}/retry", token=viewer)[0] == 403
    assert server.request("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop"},
                          token=viewer)[0] == 403
    assert server.request("POST", "/api/v1/admin/queues/diagnostics/pause",
                          token=viewer)[0] == 403
    assert server.request("GET", "/api/v1/admin/queues", token=viewer)[0] == 200
    assert server.request("POST", f"/api/v1/admin/jobs/{job_id}/retry", token=operator)[0] == 200
    new_user = {"name": "mallory", "password": "x" * 12, "role": "admin"}
    status, reply = server.request("POST", "/api/v1/admin/users", new_user, token=operator)
    assert status == 403 and reply["error"]["code"] == "forbidden"
    assert server.request("GET", "/api/v1/admin/users", token=operator)[0] == 403
    assert server.request("GET", "/api/v1/admin/audit", token=operator)[0] == 403
    remember_secret("y" * 12)
    status, reply = server.request("POST", "/api/v1/admin/users",
                                   {"name": "trent", "password": "y" * 12, "role": "viewer"},
                                   token=admin)
    assert status == 201 and reply["data"]["role"] == "viewer"
    assert server.request("POST", "/api/v1/admin/users",
                          {"name": "trent", "password": "y" * 12, "role": "viewer"},
                          token=admin)[0] == 409
    status, reply = server.request("POST", "/api/v1/admin/users",
                                   {"name": "t2", "password": "short", "role": "viewer"},
                                   token=admin)
    assert status == 400 and reply["error"]["field"] == "password"


def test_api_tokens_are_scoped_shown_once_and_revocable(server):
    admin = login(server, "root")["accessToken"]
    status, reply = server.request("POST", "/api/v1/admin/tokens",
                                   {"name": "deploy-bot", "scopes": ["jobs:write"]}, token=admin)
    assert status == 201
    value = reply["data"]["token"]
    remember_secret(value)
    listed = server.request("GET", "/api/v1/admin/tokens", token=admin)[1]["data"]["tokens"]
    assert value not in json.dumps(listed)
    bot = next(t for t in listed if t["name"] == "deploy-bot")
    assert bot["scopes"] == ["jobs:write"] and bot["lastUsedAt"] is None
    assert server.request("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop"},
                          token=value)[0] == 201
    assert server.request("POST", "/api/v1/admin/queues/diagnostics/pause",
                          token=value)[0] == 403
    listed = server.request("GET", "/api/v1/admin/tokens", token=admin)[1]["data"]["tokens"]
    assert next(t for t in listed if t["name"] == "deploy-bot")["lastUsedAt"] is not None
    assert server.request("DELETE", "/api/v1/admin/tokens/deploy-bot", token=admin)[0] == 200
    assert server.request("POST", "/api/v1/queues/diagnostics/jobs", {"name": "noop"},
                          token=value)[0] == 401
    status, reply = server.request("POST", "/api/v1/admin/tokens",
                                   {"name": "x", "scopes": ["everything"]}, token=admin)
    assert status == 400 and reply["error"]["field"] == "scopes"
    # the bootstrap token of first start is one of them; the list pages
    first = server.request("GET", "/api/v1/admin/tokens?limit=1", token=admin)[1]["data"]
    assert first["tokens"][0]["name"] == "bootstrap"
    assert first["tokens"][0]["scopes"] == ["admin"] and first["nextCursor"] is not None
    rest = server.request("GET", f"/api/v1/admin/tokens?cursor={first['nextCursor']}",
                          token=admin)[1]["data"]["tokens"]
    assert [t["name"] for t in rest] == ["deploy-bot"]


# -- passwords and sign-in ------------------------------------------------------------------

def test_stored_hashes_are_argon2id_with_strong_parameters(server):
    from synthbox.accounts.models import User
    from synthbox.app import build_engine
    from synthbox.config import load_settings

    engine = build_engine(load_settings({"data_dir": str(server.data_dir)}, env={}))
    try:
        hashes = [u.password_hash for u in User.select()]
    finally:
        engine.close()
    assert hashes
    for stored in hashes:
        match = re.match(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", stored)
        assert match, stored[:20]
        assert int(match.group(1)) >= 19 * 1024 and int(match.group(2)) >= 2


def test_a_weaker_hash_is_upgraded_at_the_next_login(server):
    from argon2 import PasswordHasher

    from synthbox.accounts.models import User
    from synthbox.app import build_engine
    from synthbox.config import load_settings

    remember_secret("legacy password 1")
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash("legacy password 1")
    engine = build_engine(load_settings({"data_dir": str(server.data_dir)}, env={}))
    try:
        now = time.time()
        User.create(name="legacy", password_hash=weak, role="viewer", created_at=now,
                    password_changed_at=now - 10)
        login(server, "legacy", "legacy password 1")
        stored = User.get(User.name == "legacy").password_hash
    finally:
        engine.close()
    assert stored != weak and "m=19456,t=2" in stored


def test_ten_wrong_passwords_in_a_minute_give_429(server):
    create_user(server.data_dir, "target", "viewer", "target password 1")
    for _ in range(10):
        status, _ = server.request("POST", "/api/v1/auth/login",
                                   {"name": "target", "password": "wrong guess 123"},
                                   token=None)
        assert status == 401
    for password in ("wrong guess 123", "target password 1"):  # the right one waits too
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/api/v1/auth/login",
                     json.dumps({"name": "target", "password": password}))
        response = conn.getresponse()
        reply = json.loads(response.read())
        conn.close()
        assert response.status == 429 and reply["error"]["code"] == "too_many_requests"
        assert 1 <= int(response.headers["Retry-After"]) <= 61


def test_unknown_and_known_users_get_the_same_answer(server):
    unknown = server.request("POST", "/api/v1/auth/login",
                             {"name": "nobody-here", "password": "whatever 123"}, token=None)
    known = server.request("POST", "/api/v1/auth/login",
                           {"name": "eve", "password": "whatever 123"}, token=None)
    assert unknown == known
    assert unknown[0] == 401


# -- the browser ----------------------------------------------------------------------------

def test_sign_in_session_csrf_and_sign_out(server):
    browser = Browser(server)
    status, headers, _ = browser.request("GET", "/")
    assert status == 302 and headers["Location"].startswith("/login")
    token = browser.csrf("/login?next=/")
    assert browser.request("POST", "/login?next=/", {"name": "eve",
                                                      "password": PASSWORDS["eve"]})[0] == 403
    status, headers, _ = browser.request("POST", "/login?next=/", {
        "name": "eve", "password": PASSWORDS["eve"], "csrf_token": token})
    assert status == 302 and headers["Location"] == "/"
    cookie_header = next(h for h in headers.get_all("Set-Cookie")
                         if h.startswith("synthbox_session="))
    assert "HttpOnly" in cookie_header and "SameSite=Lax" in cookie_header
    first_session = browser.cookies["synthbox_session"]
    status, _, html = browser.request("GET", "/")
    assert status == 200 and "eve (viewer)" in html

    # a second sign-in gets a new session id
    second = Browser(server)
    token2 = second.csrf("/login")
    second.request("POST", "/login", {"name": "eve", "password": PASSWORDS["eve"],
                                       "csrf_token": token2})
    assert second.cookies["synthbox_session"] != first_session

    # sign-out: cross-site and token-less posts are refused, then it ends on the server
    page_token = re.search(r'name="csrf_token" value="([^"]+)"',
                           browser.request("GET", "/")[2]).group(1)
    assert browser.request("POST", "/logout", {"csrf_token": page_token},
                           {"Origin": "http://evil.example"})[0] == 403
    assert browser.request("POST", "/logout", {"csrf_token": "forged"})[0] == 403
    assert browser.request("POST", "/logout", {"csrf_token": page_token})[0] == 302
    replay = Browser(server)
    replay.cookies["synthbox_session"] = first_session
    assert replay.request("GET", "/")[0] == 302


def test_wrong_password_is_a_message_on_the_page(server):
    browser = Browser(server)
    token = browser.csrf("/login")
    status, _, html = browser.request("POST", "/login", {
        "name": "eve", "password": "not it at all", "csrf_token": token})
    assert status == 401 and 'class="error"' in html and "not right" in html


def test_next_only_redirects_within_the_site(server):
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example",
                   "/\t/evil.example", "/\n/x", "/ /evil.example"):
        browser = Browser(server)
        token = browser.csrf("/login")
        status, headers, _ = browser.request(
            "POST", "/login?" + urllib.parse.urlencode({"next": target}),
            {"name": "eve", "password": PASSWORDS["eve"], "csrf_token": token})
        assert status == 302 and headers["Location"] == "/", target


def test_security_headers_and_body_limit(server):
    _, headers, _ = Browser(server).request("GET", "/login")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "Cookie" in headers["Vary"]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/api/v1/queues/diagnostics/jobs")
    conn.putheader("Authorization", f"Bearer {server.token}")
    conn.putheader("Content-Length", str(64 * 1024 * 1024))
    conn.endheaders()
    response = conn.getresponse()  # answered before any body byte was sent
    assert response.status == 413
    reply = json.loads(response.read())
    assert reply["success"] is False and reply["error"]["field"] == "body"
    assert reply["error"]["message"] == "body: larger than 16777216 bytes"
    conn.close()


# -- the admin API --------------------------------------------------------------------------

def test_seed_shaped_queue_endpoint(server):
    admin = login(server, "root")["accessToken"]
    status, reply = server.request("GET", "/api/v1/admin/diagnostics/queue", token=admin)
    assert status == 200 and reply["success"] is True
    assert list(reply["data"]) == ["stats", "failedJobs"]
    assert list(reply["data"]["stats"]) == ["waiting", "active", "completed", "failed",
                                           "delayed", "total"]
    for job in reply["data"]["failedJobs"]:
        assert {"id", "data", "failedReason", "attemptsMade", "timestamp"} <= set(job)


def test_search_bulk_actions_with_dry_run_and_the_audit_log(server):
    admin = login(server, "root")["accessToken"]
    jobs = [{"name": "fail", "data": {"times": 9, "order": f"needle-{i}"},
             "opts": {"attempts": 1}} for i in range(3)]
    jobs.append({"name": "fail", "data": {"times": 9, "order": "hay"}, "opts": {"attempts": 1}})
    server.request("POST", "/api/v1/queues/diagnostics/jobs/bulk", {"jobs": jobs}, token=admin)
    base = "/api/v1/admin/queues/diagnostics/jobs"
    wait_for(lambda: len(server.request("GET", f"{base}?state=failed&search=NEEDLE",
                                        token=admin)[1]["data"]["jobs"]) == 3,
             message="three failed needles")
    status, reply = server.request("GET", f"{base}?search=needle&limit=1000", token=admin)
    assert status == 200 and len(reply["data"]["jobs"]) == 3
    status, reply = server.request("GET", f"{base}?search=needle&limit=100000", token=admin)
    assert (status, reply["error"]["field"]) == (400, "limit")
    dry = server.request("POST", f"{base}/delete", {"state": "failed", "search": "needle",
                                                    "dryRun": True}, token=admin)[1]["data"]
    assert dry == {"dryRun": True, "count": 3}
    assert len(server.request("GET", f"{base}?search=needle", token=admin)[1]["data"]
               ["jobs"]) == 3
    done = server.request("POST", f"{base}/delete", {"state": "failed", "search": "needle"},
                          token=admin)[1]["data"]
    assert done == {"dryRun": False, "count": 3}
    assert server.request("GET", f"{base}?search=needle", token=admin)[1]["data"]["jobs"] == []
    assert len(server.request("GET", f"{base}?search=hay", token=admin)[1]["data"]["jobs"]) == 1
    entries = server.request("GET", "/api/v1/admin/audit?limit=5", token=admin)[1]["data"]
    top = entries["entries"][0]
    assert top["actor"] == "root" and top["action"] == "jobs.bulk-delete"
    assert top["target"] == "queue:diagnostics" and top["address"] == "127.0.0.1"


def test_users_disable_and_list_from_the_cli(server):
    env = {"SYNTHBOX_DATA_DIR": str(server.data_dir)}
    create_user(server.data_dir, "temp", "viewer", "temporary pass 1")
    pair = login(server, "temp", "temporary pass 1")
    assert run_cli("users", "disable", "temp", env=env).returncode == 0
    assert server.request("GET", "/api/v1/auth/me", token=pair["accessToken"])[0] == 401
    listed = json.loads(run_cli("users", "list", "--json", env=env).stdout)
    assert next(u for u in listed if u["name"] == "temp")["disabled"] is True
    result = run_cli("users", "create", "x", "--role", "viewer", "--password", "nope", env=env)
    assert result.returncode == 2, "a password is never an argument"


def test_first_admin_from_the_one_time_setup_link(tmp_path):
    data = tmp_path / "fresh"
    serve = Serve(data).start()
    try:
        log_file = data / "synthbox.log"
        wait_for(lambda: log_file.exists() and "first admin" in log_file.read_text(),
                 message="the start log")
        log = log_file.read_text()
        link = re.search(r"create the first admin at (http://\S+)", log).group(1)
        remember_secret(link.rsplit("/", 1)[1])
        assert link.rsplit("/", 1)[1] not in serve.output(), "the link must not reach stderr"
        path = urllib.parse.urlsplit(link).path
        browser = Browser(serve)
        token = browser.csrf(path)
        remember_secret("first admin pass")
        assert browser.request("POST", path, {"name": "boss", "password": "first admin pass",
                                              "confirm": "first admin pass"})[0] == 403
        status, headers, _ = browser.request("POST", path, {
            "name": "boss", "password": "first admin pass", "confirm": "first admin pass",
            "csrf_token": token})
        assert status == 302 and headers["Location"] == "/"
        assert browser.request("GET", "/")[0] == 200
        assert Browser(serve).request("GET", path)[0] == 404, "the link works once"
    finally:
        serve.stop()


def test_email_jobs_and_bodies_are_guarded(server):
    viewer = login(server, "eve")["accessToken"]
    admin = login(server, "root")["accessToken"]
    status, reply = server.request("POST", "/api/v1/queues/email/jobs",
                                   {"name": "send", "data": {"queueId": "1"}}, token=admin)
    assert status == 403 and "/api/v1/emails" in reply["error"]["message"]
    assert server.request("GET", "/api/v1/emails", token=viewer)[0] == 403
    assert server.request("GET", "/api/v1/emails", token=admin)[0] == 200
    assert server.request("GET", "/api/v1/emails/%C2%B2", token=admin)[0] == 404


def test_lone_surrogates_are_400_not_500(server):
    status, reply = server.request("POST", "/api/v1/auth/login",
                                   raw=b'{"name": "eve", "password": "\\ud800"}', token=None)
    assert status == 400 and reply["error"]["field"] == "body"


def test_more_of_the_jwt_matrix(server):
    good = login(server, "eve")["accessToken"]
    claims = jwt.decode(good, options={"verify_signature": False})
    secret = (server.data_dir / "jwt-secret").read_text().strip()
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        hs512 = jwt.encode(claims, secret, algorithm="HS512")
    for label, token in {
        "no jti": jwt.encode({k: v for k, v in claims.items() if k != "jti"}, secret,
                             algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret,
                             algorithm="HS256"),
        "HS512 with the right key": hs512,
        "unknown user": jwt.encode({**claims, "sub": "999999"}, secret, algorithm="HS256"),
    }.items():
        assert server.request("GET", "/api/v1/auth/me", token=token)[0] == 401, label


def test_cross_site_form_posts_are_refused(server):
    browser = Browser(server)
    token = browser.csrf("/login")
    form = {"name": "eve", "password": PASSWORDS["eve"], "csrf_token": token}
    assert browser.request("POST", "/login", form, {"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert browser.request("POST", "/login", form, {"Origin": "http://evil.example"})[0] == 403
    assert browser.request("POST", "/login", form, {"Sec-Fetch-Site": "same-origin"})[0] == 302


def test_admin_changes_users_and_the_last_admin_stays(server):
    admin = login(server, "root")["accessToken"]
    remember_secret("patched password 1")
    create_user(server.data_dir, "patchme", "viewer", "original password 1")
    status, reply = server.request("PATCH", "/api/v1/admin/users/patchme",
                                   {"password": "patched password 1"}, token=admin)
    assert status == 200
    login(server, "patchme", "patched password 1")
    status, reply = server.request("PATCH", "/api/v1/admin/users/patchme", {"disabled": True},
                                   token=admin)
    assert status == 200 and reply["data"]["disabled"] is True
    assert server.request("POST", "/api/v1/auth/login",
                          {"name": "patchme", "password": "patched password 1"},
                          token=None)[0] == 401
    status, reply = server.request("PATCH", "/api/v1/admin/users/root", {"disabled": True},
                                   token=admin)
    assert status == 409, "the last enabled admin cannot be disabled"
    assert server.request("PATCH", "/api/v1/admin/users/nobody", {"disabled": True},
                          token=admin)[0] == 404
    status, reply = server.request("PATCH", "/api/v1/admin/users/patchme", {"role": "admin"},
                                   token=admin)
    assert status == 400 and reply["error"]["field"] == "role"


def test_one_address_is_throttled_across_accounts(tmp_path):
    serve = Serve(tmp_path / "throttle").start()
    try:
        for i in range(30):
            status, _ = serve.request("POST", "/api/v1/auth/login",
                                      {"name": f"guess{i}", "password": "wrong guess 123"},
                                      token=None)
            assert status == 401
        status, reply = serve.request("POST", "/api/v1/auth/login",
                                      {"name": "someone-new", "password": "wrong guess 123"},
                                      token=None)
        assert status == 429
    finally:
        serve.stop()


def test_the_session_cookie_is_secure_behind_a_proxy_that_says_https(tmp_path):
    create_user(tmp_path / "proxied", "pia", "viewer", "proxied password 1")
    serve = Serve(tmp_path / "proxied", {"SYNTHBOX_TRUST_PROXY": "true"}).start()
    try:
        browser = Browser(serve)
        token = browser.csrf("/login")
        status, headers, _ = browser.request(
            "POST", "/login", {"name": "pia", "password": "proxied password 1",
                               "csrf_token": token},
            {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
        assert status == 302
        cookie = next(h for h in headers.get_all("Set-Cookie")
                      if h.startswith("synthbox_session="))
        assert "Secure" in cookie
    finally:
        serve.stop()


def test_parallel_guesses_cannot_pass_the_limit(server):
    from concurrent.futures import ThreadPoolExecutor

    create_user(server.data_dir, "racer", "viewer", "racer password 1")

    def guess(_):
        return server.request("POST", "/api/v1/auth/login",
                              {"name": "racer", "password": "wrong guess 123"}, token=None)[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(guess, range(24)))
    assert statuses.count(401) <= 10, statuses
    assert statuses.count(401) + statuses.count(429) == 24


def test_instances_starting_together_read_one_whole_secret(tmp_path):
    """Cluster mode starts its instances at once, and each reads or creates the JWT,
    session and admin-token secrets: none may read the file between its creation and its
    content (an empty JWT key answered every sign-in with a 500)."""
    import threading

    from synthbox.secrets import read_or_create_secret

    for round_ in range(200):
        folder = tmp_path / str(round_)
        folder.mkdir()
        start = threading.Barrier(4)
        values: list[str] = []

        def read(folder=folder, start=start, values=values) -> None:
            start.wait()
            values.append(read_or_create_secret(folder, "secret")[0])

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(values)) == 1 and values[0], values
        assert sorted(p.name for p in folder.iterdir()) == ["secret"]


def test_instances_starting_together_adopt_the_admin_token_once(tmp_path, monkeypatch):
    """Each instance adopts its admin token as an API token at start: `bootstrap`, or
    `bootstrap-<host>-<digest>` on another host sharing the records. Instances starting
    at once all find theirs missing; an insert that then meets another's row must
    neither crash its instance (cluster mode restarted it) nor leave its token out."""
    import socket

    import peewee

    from synthbox.accounts import tokens
    from synthbox.accounts.models import ApiToken
    from synthbox.app import build_engine
    from synthbox.config import load_settings

    engine = build_engine(load_settings({"data_dir": str(tmp_path / "a")}, env={}))
    exists = peewee.ModelSelect.exists

    def looks_before_the_others_insert(stale_looks):
        looked = []

        def look(self, database=None):
            looked.append(self)
            return False if len(looked) <= stale_looks else exists(self, database)
        monkeypatch.setattr(peewee.ModelSelect, "exists", look)

    try:
        tokens.adopt_bootstrap_token(engine.data_path)  # the first instance
        looks_before_the_others_insert(stale_looks=10)
        tokens.adopt_bootstrap_token(engine.data_path)  # another on the same host
        with pytest.raises(tokens.Conflict, match="name: a token named 'bootstrap'"):
            tokens.create_token("bootstrap", ["jobs:write"], "tester")
        other_host = tmp_path / "b"
        other_host.mkdir()
        looks_before_the_others_insert(stale_looks=3)  # its checks and create_token's
        tokens.adopt_bootstrap_token(other_host)
        monkeypatch.undo()
        host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower())[:40]
        names = [t.name for t in ApiToken.select().order_by(ApiToken.id)]
        assert names[0] == "bootstrap" and names[1:] == [f"bootstrap-{host}-{names[1][-6:]}"]
        token = (other_host / "admin-token").read_text().strip()
        assert tokens.authenticate_token(token) is not None
    finally:
        engine.close()
