"""Remote workers in any language: the Faktory work protocol (`server.py`, `session.py`)
and the jobs and workers it shares with the HTTP worker API (`jobs.py`, `workers.py`)."""
