"""Constructive heuristic: region growing from seeded centres, rebalancing and local search
(:mod:`.heuristic`)."""
