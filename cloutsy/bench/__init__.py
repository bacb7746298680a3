"""`invoke bench`: the service against a hand-written psycopg2 baseline, under wrk.

- `baseline.py` — what a user would otherwise write: psycopg2, a pool of 5, plain SQL;
- `constant.py` — a constant JSON body on the same server: the HTTP ceiling;
- `runner.py` — dataset, server processes, wrk runs, checks and the table.

Imports here stay light: the task imports the runner lazily.
"""
