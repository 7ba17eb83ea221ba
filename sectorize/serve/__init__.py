"""Routing referrals to the referent worker.

- :mod:`~sectorize.serve.routing`: the :class:`~sectorize.serve.routing.Router` (INSEE code,
  postcode or point -> worker, with the rule that applied);
- :mod:`~sectorize.serve.dated`: which plan answers on a given day (registry publications,
  one registry plan, or one run folder);
- :mod:`~sectorize.serve.service`: the HTTP service (FastAPI), routing by date.
"""
