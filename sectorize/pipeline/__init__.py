"""From a scenario to a checked plan: reading inputs, solving, assembling.

- :mod:`~sectorize.pipeline.inputs`: the one translation of a scenario into solver inputs
  (region, demand, travel times, team, and the model settings as solver options);
- :mod:`~sectorize.pipeline.run`: a plan from scratch (``run``, ``run_and_write``);
- :mod:`~sectorize.pipeline.validate`: every input file opened and checked, nothing solved
  (``sectorize validate``);
- :mod:`~sectorize.pipeline.rerun`: the annual re-run from last year's plan;
- :mod:`~sectorize.pipeline.assemble`: a nested solution -> the plan's tables, and their
  independent check;
- :mod:`~sectorize.pipeline.sweep`: many scenarios in parallel processes or on Dask;
- :mod:`~sectorize.pipeline.instance`: generic instances from plain files (``sectorize solve``).
"""
