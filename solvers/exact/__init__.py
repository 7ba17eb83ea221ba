"""Exact districting: the whole location-allocation MIP (:mod:`.model`), the complete list of
feasible districts (:mod:`.districts`), and the engine's ``"exact"`` backend composing them
with Lagrangian fixing (:mod:`.backend`)."""
