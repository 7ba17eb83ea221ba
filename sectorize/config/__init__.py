"""Configuration files, validated: what a planner writes by hand.

- :mod:`~sectorize.config.scenario`: the scenario TOML (region, demand, team, groups, model, output);
- :mod:`~sectorize.config.sweep`: the sweep TOML (a base scenario, named variations, seeds);
- :mod:`~sectorize.config.errors`: the one explainer that turns a validation error into
  ``file: key: what to do``.
"""
