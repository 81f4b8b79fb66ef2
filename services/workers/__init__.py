"""Contained tool runs: a warm pool of worker processes that run tool code under enforced limits
(``pool``), the worker side (``child``), the limits and their codes (``limits``) and the leases
that tell the sweeper which processes are alive (``leases``)."""
