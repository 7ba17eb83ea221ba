"""Large-neighbourhood search: pairs and triples of sectors re-optimised (:mod:`.search`,
:mod:`.reassign`), and the kicks and rounds around it (:mod:`.kicks`)."""
