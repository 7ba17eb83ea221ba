"""Allocation of units to fixed centres: the allocation MIP and LP (:mod:`.mip`) and the
location-allocation loop around them (:mod:`.loop`)."""
