"""A `command` job: the job arrives as JSON on standard input; exit 0 completes it, and
the last line printed, when it is JSON, is its result. Anything on standard error is
kept when the job fails (exit status other than 0)."""

import json
import sys

job = json.load(sys.stdin)
image = job["data"].get("image")
if not image:
    print("data.image is missing", file=sys.stderr)
    sys.exit(1)
print(f"resizing {image} (attempt {job['attempt']})")  # a log line, not the result
print(json.dumps({"resized": image, "width": job["data"].get("width", 640) // 2}))
