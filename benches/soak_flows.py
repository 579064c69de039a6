#!/usr/bin/env python3
"""The browser-side half of the soak (benches/soak.sh): people signing in, apps exchanging codes,
refreshing, revoking, resource servers introspecting and polling the revocation feed.

Standard library only. Each worker loops until the deadline:
  sign-in worker   GET /authorize -> /login -> POST /login -> back to /authorize -> code
                   -> POST /token (code + PKCE) -> a refresh -> /introspect the access token
                   -> /revoke the refresh token (the family ends; housekeeping collects it)
  feed worker      GET /revocations every second, following the cursor
Prints one JSON line of counts at the end; any 5xx (or an unexpected answer) is counted as an
error with its status.
"""

import base64
import hashlib
import html
import http.cookiejar
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ["SOAK_BASE"]
CLIENT_ID = os.environ["SOAK_CLIENT_ID"]
CLIENT_SECRET = os.environ["SOAK_CLIENT_SECRET"]
REDIRECT = os.environ["SOAK_REDIRECT"]
USERNAME = os.environ["SOAK_USERNAME"]
PASSWORD = os.environ["SOAK_PASSWORD"]
FEED_ID = os.environ["SOAK_FEED_ID"]
FEED_SECRET = os.environ["SOAK_FEED_SECRET"]
DEADLINE = time.time() + float(os.environ.get("SOAK_SECONDS", "600"))
WORKERS = int(os.environ.get("SOAK_SIGN_IN_WORKERS", "2"))

counts = {}
lock = threading.Lock()


def count(key, n=1):
    with lock:
        counts[key] = counts.get(key, 0) + n


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def basic(client_id, secret):
    raw = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def call(opener, method, url, form=None, headers=None):
    """(status, headers, body) without following redirects; 5xx and errors are counted."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as resp:
            status, hdrs, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, hdrs, body = e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError) as e:
        count(f"error_transport_{type(e).__name__}")
        return None, {}, b""
    if status >= 500:
        count(f"error_{status}")
    return status, hdrs, body


def absolute(location):
    return urllib.parse.urljoin(BASE + "/", location)


def hidden(page, name):
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    return html.unescape(m.group(1)) if m else ""


def expect(ok, what):
    if ok:
        count(what)
        return True
    count(f"unexpected_{what}")
    return False


def sign_in_and_use_tokens():
    app = urllib.request.build_opener(NoRedirect)
    auth = {"Authorization": basic(CLIENT_ID, CLIENT_SECRET)}
    feed_auth = {"Authorization": basic(FEED_ID, FEED_SECRET)}
    while time.time() < DEADLINE:
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(
            NoRedirect, urllib.request.HTTPCookieProcessor(jar)
        )
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": REDIRECT,
                "scope": "api:read",
                "state": "soak",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        status, hdrs, _ = call(browser, "GET", f"{BASE}/authorize?{query}")
        if not expect(status == 303, "authorize_to_login"):
            continue
        status, _, body = call(browser, "GET", absolute(hdrs["Location"]))
        page = body.decode(errors="replace")
        if not expect(status == 200, "login_page"):
            continue
        form = {
            "csrf_token": hidden(page, "csrf_token"),
            "return_to": hidden(page, "return_to"),
            "username": USERNAME,
            "password": PASSWORD,
        }
        status, hdrs, _ = call(browser, "POST", f"{BASE}/login", form)
        if not expect(status == 303, "sign_in"):
            continue
        status, hdrs, _ = call(browser, "GET", absolute(hdrs["Location"]))
        location = hdrs.get("Location", "") if status == 303 else ""
        if not expect(location.startswith(REDIRECT), "code_issued"):
            continue
        code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
        token_form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        status, _, body = call(app, "POST", f"{BASE}/token", token_form, auth)
        if not expect(status == 200, "code_exchange"):
            continue
        tokens = json.loads(body)
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        status, _, body = call(app, "POST", f"{BASE}/token", refresh, auth)
        if not expect(status == 200, "refresh"):
            continue
        tokens = json.loads(body)
        form = {"token": tokens["access_token"]}
        status, _, body = call(app, "POST", f"{BASE}/introspect", form, feed_auth)
        expect(status == 200 and json.loads(body).get("active") is True, "introspect")
        form = {"token": tokens["refresh_token"]}
        status, _, _ = call(app, "POST", f"{BASE}/revoke", form, auth)
        expect(status == 200, "revoke")


def poll_feed():
    opener = urllib.request.build_opener(NoRedirect)
    headers = {"Authorization": basic(FEED_ID, FEED_SECRET)}
    cursor = None
    while time.time() < DEADLINE:
        url = f"{BASE}/revocations" + (f"?after={cursor}" if cursor else "")
        status, _, body = call(opener, "GET", url, headers=headers)
        if expect(status == 200, "feed_poll"):
            page = json.loads(body)
            cursor = page["cursor"]
            count("feed_families", len(page["families"]))
        time.sleep(1)


threads = [threading.Thread(target=sign_in_and_use_tokens) for _ in range(WORKERS)]
threads.append(threading.Thread(target=poll_feed))
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts, sort_keys=True))
sys.exit(1 if any(k.startswith(("error", "unexpected")) for k in counts) else 0)
