"""Lower bounds on the ``"pmedian"`` objective: the Lagrangian bound (:mod:`.lagrangian`), run in a
second process (:mod:`.background`), the fixing it allows (:mod:`.fixing`) and the strong LP
relaxation (:mod:`.relaxation`)."""
