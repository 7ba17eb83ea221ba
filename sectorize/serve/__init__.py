"""Routing referrals to the referent worker.

- :mod:`~sectorize.serve.routing`: the :class:`~sectorize.serve.routing.Router` (INSEE code,
  postcode or point -> worker, with the rule that applied);
- :mod:`~sectorize.serve.service`: its HTTP service (FastAPI).
"""
