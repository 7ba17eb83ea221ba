"""Where plans live: run folders, the registry, the routing contract.

- :mod:`~sectorize.store.atomic`: atomic files and run folders (never half-written);
- :mod:`~sectorize.store.export`: writes a run folder (tables, map, KPIs, effective scenario);
- :mod:`~sectorize.store.reopen`: a stored plan back into a :class:`~sectorize.plan.Plan`;
- :mod:`~sectorize.store.registry`: the SQLite registry of plans, effective dates and lineage;
- :mod:`~sectorize.store.contract`: the versioned tables the routing service reads, and their
  JSON schemas (``schemas/``).
"""
