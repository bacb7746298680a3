"""Realistic, deterministic demo data for the notebooks and the benchmark (`invoke seed.demo`).

`vocabulary` holds the words (data), `generate` draws the rows from one seeded numpy
generator, `load` COPYs them in one transaction. The same seed on an empty database
gives the same rows (timestamps are anchored at today's midnight UTC).
"""

from cloutsy.demo.generate import DEMO_PASSWORD, PROFILE_FIELDS
from cloutsy.demo.load import DemoResult, count_accounts, seed_demo

__all__ = ["DEMO_PASSWORD", "PROFILE_FIELDS", "DemoResult", "count_accounts", "seed_demo"]
