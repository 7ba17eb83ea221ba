"""The team's web app (``sectorize app``): a referral desk and a plan studio over a plan registry.

Modules, one job each:

* :mod:`sectorize.app.web` — the FastAPI application: pages, JSON API, sessions, roles, CSRF;
* :mod:`sectorize.app.accounts` — users (password hashes), sessions, login rate limit, audit log;
* :mod:`sectorize.app.draft` — a plan being edited: moves, locks, undo/redo, the review after each move;
* :mod:`sectorize.app.jobs` — re-optimisation and re-runs in a separate process, with progress and cancel;
* :mod:`sectorize.app.search` — commune names, postcodes and INSEE codes typed at the desk;
* :mod:`sectorize.app.geometry` — the simplified polygons the browser draws;
* :mod:`sectorize.app.demand` — this year's uploaded counts, checked as ``sectorize validate`` does;
* ``static/`` — the two pages (plain JavaScript, Leaflet vendored in ``sectorize/assets``).
"""
