"""Small-count suppression for tables that leave the team.

Per-commune demand counts are aggregated, but a count of 1 or 2 patients in a
small commune can still point at a person. Before a table leaves the social
work team (the routing service's contract export, a report to another
department), replace the small counts with a text such as ``"<5"``:
:func:`suppress_small` does it, and :func:`sectorize.store.contract.export_contract`
calls it when ``suppress_below`` is set.

This is primary suppression only: a total published next to the suppressed
cells can give them back by subtraction, so do not publish totals of a
suppressed column alongside it.

Example
-------
>>> import pandas as pd
>>> table = pd.DataFrame({"insee": ["01001", "01002"], "referrals": [2.4, 12.6]})
>>> suppress_small(table, ["referrals"])["referrals"].tolist()
['<5', '13']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: The usual threshold: counts of 1 to 4 are not shown.
DEFAULT_THRESHOLD = 5


def suppressed_label(threshold: int) -> str:
    """The text that replaces a count below ``threshold``, e.g. ``"<5"``."""
    return f"<{threshold}"


def suppress_small(table: pd.DataFrame, columns: Sequence[str], threshold: int = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """A copy of ``table`` where counts below ``threshold`` read ``"<threshold"``.

    Parameters
    ----------
    table
        Any table; it is not modified.
    columns
        The count columns to suppress (e.g. ``referrals`` per year,
        ``home_care`` patients).
    threshold
        Smallest count shown (an integer >= 1). A value ``v`` with
        ``v < threshold`` (zero included) becomes ``"<threshold"``; the
        others become their nearest integer as text (halves rounded up:
        ``12.5 -> "13"``). Each suppressed column is text afterwards.

    Raises
    ------
    ValueError
        A column is missing, or holds a negative, missing or non-numeric
        value (the message names the column and the row).

    Example
    -------
    >>> suppress_small(pd.DataFrame({"home_care": [0, 5, 7.5]}), ["home_care"], threshold=3)["home_care"].tolist()
    ['<3', '5', '8']
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)) or threshold < 1:
        raise ValueError(f"threshold must be an integer >= 1 (got {threshold!r})")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"cannot suppress the column(s) {missing}: not in the table (columns: {list(table.columns)})")
    out = table.copy()
    label = suppressed_label(int(threshold))
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | (values < 0)
        if bad.any():
            row = table.index[bad.to_numpy()][0]
            raise ValueError(
                f"column {column!r}, row {row!r}: {table[column].loc[row]!r} is not a count (a number >= 0); "
                "fix or fill the value before suppressing"
            )
        out[column] = pd.Series(
            [label if v < threshold else str(math.floor(v + 0.5)) for v in values.to_numpy(dtype=float)],
            index=table.index, dtype="str",
        )
    return out
