"""Minimum cut edges: contiguous, balanced sectors with the fewest edges between sectors
(:mod:`.backend`), and the cut-edges tie-break for other objectives (:mod:`.tie_break`)."""
