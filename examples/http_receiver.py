"""An app that takes SynthBox's `http` jobs: it checks each delivery's signature, does
the work, and answers JSON (kept as the job's result).

    THUMBS_SECRET=... python3 http_receiver.py      # listens on 127.0.0.1:8080 (PORT)

A job arrives as a POST of {"id", "queue", "name", "data", "attempt"} with
X-SynthBox-Timestamp and X-SynthBox-Signature: v1=<hex HMAC-SHA256(secret,
"<timestamp>.<body>")>. Answer 2xx when done, 429 or 503 with Retry-After to be asked
again later (no attempt used), anything else to fail the attempt.
"""

import hashlib
import hmac
import os
import time

from flask import Flask, abort, jsonify, request

app = Flask(__name__)
SECRET = os.environ["THUMBS_SECRET"].encode()


def verify(body: bytes) -> None:
    stamp = request.headers.get("X-SynthBox-Timestamp", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
        abort(401)  # missing, or too old: a replay
    expected = "v1=" + hmac.new(SECRET, stamp.encode() + b"." + body,
                                hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-SynthBox-Signature", "")):
        abort(401)


@app.post("/jobs/thumbnail")
def thumbnail():
    verify(request.get_data())
    job = request.get_json()
    width = job["data"].get("width", 640)
    return jsonify({"thumbnail": f"{job['data']['image']}@{width // 4}w"})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
