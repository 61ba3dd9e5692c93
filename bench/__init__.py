"""statusflow's load benchmark (issue 4).

``python -m bench.run`` starts statusflow on loopback on a temporary database, seeds
orders and triggers, drives it with a realistic mix of events from a separate process
and measures, in the same run, a bare group-commit baseline (:mod:`bench.baseline`) on
the same kind of database. See ``python -m bench.run --help`` and ``docs/performance.md``.
"""
