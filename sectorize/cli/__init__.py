"""The ``sectorize`` command: a thin shell over the Python API, one module per sub-command.

- :mod:`~sectorize.cli.main`: the parser and the ``run`` / ``validate`` commands;
- :mod:`~sectorize.cli.exit_codes`: the one table of exit codes shared by every command;
- ``plans``, ``route``, ``rerun``, ``solve``, ``sweep``, ``simulate``: one module each.
"""

from sectorize.cli.main import main

__all__ = ["main"]
