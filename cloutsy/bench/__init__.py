"""`invoke bench`: the service against a hand-written psycopg2 baseline, under wrk.

- `runner.py` — the run: datasets on each server version, rounds, checks, the report;
- `workload.py` — the seeded bench databases and the requests drawn from them;
- `servers.py` — starting and stopping a live server (the bench's three stacks, and the
  tests' `invoke serve`);
- `load.py` — wrk runs, their results and the statistics over rounds;
- `compare.py` — the same-JSON check against the baseline, and the 304 check;
- `report.py` — the table, the pass/fail checks and the notes under it;
- `scale.py` — `--scale`: the list, keyset, search and analytics checks at 1,000,000;
- `baseline.py` — what a user would otherwise write: psycopg2, a pool of 5, plain SQL;
- `constant.py` — a constant JSON body on the same server: the HTTP ceiling;
- `login_flood.py` — reads under a login flood (run by hand, see the README);
- `*.lua` — wrk's request scripts and the shared `done()` reporter (`report.lua`).

Throwaway PostgreSQL clusters (the PostgreSQL 15 target) are `cloutsy.clusters`.
Imports here stay light: the task imports the runner lazily.
"""

from cloutsy.errors import TaskError


class BenchError(TaskError):
    """The bench could not run or its checks could not start."""
