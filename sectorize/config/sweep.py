"""The sweep file: a base scenario, named variations (dotted-key changes) and seeds.

A sweep TOML names its base scenario (a path, an inline table, or nothing for
the packaged default), one ``[[variations]]`` block per variation and the
seeds; :func:`load_sweep` validates it and :func:`apply_changes` turns one
variation into a scenario. Running the sweep is :mod:`sectorize.pipeline.sweep`.

>>> from sectorize.config.scenario import default_scenario
>>> apply_changes(default_scenario(), {"groups.count": 3}).groups.names
['A', 'B', 'C']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sectorize.config.errors import explain_all
from sectorize.config.scenario import (
    PATH_KEYS,
    Scenario,
    ScenarioError,
    default_scenario,
    load_scenario,
    read_toml,
    scenario_from_dict,
)


class SweepError(ValueError):
    """A sweep file or table is invalid; the message names the file and the key."""


# --------------------------------------------------------------------------- the sweep file


class Variation(BaseModel):
    """One named set of changes to the base scenario.

    Attributes
    ----------
    name
        Unique label, shown in the results (e.g. ``"tolerance 5 %"``).
    description
        Free text.
    changes
        ``{dotted key: value}``, e.g. ``{"model.tolerance": 0.05}``; empty
        for the base scenario itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    changes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("changes")
    @classmethod
    def _keys(cls, changes: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in changes if not k or any(not part for part in k.split("."))]
        if bad:
            raise ValueError(f"keys {bad} are not dotted keys such as 'model.tolerance'")
        return changes


class SweepConfig(BaseModel):
    """A validated sweep: a base scenario, variations and seeds.

    Attributes
    ----------
    name
        Label of the sweep (used in notes of stored plans).
    base
        The base scenario: a TOML path (relative to the sweep file), an
        inline table of scenario keys, or ``None`` for the packaged AURA
        default.
    seeds
        Solver seeds (``model.seed``); every variation runs once per seed.
    variations
        At least one; names unique.
    source
        The sweep file (set by :func:`load_sweep`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field("sweep", min_length=1)
    description: str = ""
    base: str | dict[str, Any] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    variations: list[Variation] = Field(min_length=1)
    source: Path | None = Field(None, exclude=True)

    @field_validator("base", mode="before")
    @classmethod
    def _base_kind(cls, value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if value is not None and not isinstance(value, (str, dict)):
            raise ValueError("give the path of a scenario TOML file, an inline [base] table, or leave it out "
                             "for the packaged AURA default")
        if isinstance(value, str) and not value.strip():
            raise ValueError("empty path; give a scenario TOML file or leave the key out")
        return value

    @model_validator(mode="after")
    def _unique(self) -> SweepConfig:
        problems = []
        names = [v.name for v in self.variations]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"variations: names must be unique, {dup} used more than once")
        if len(set(self.seeds)) != len(self.seeds):
            problems.append(f"seeds: each seed once, got {self.seeds}")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def size(self) -> int:
        """Number of solves: variations x seeds."""
        return len(self.variations) * len(self.seeds)


#: Hints added to the message of a missing key, by location.
_MISSING_HINTS = {("variations",): "add at least one [[variations]] block with a name"}


def sweep_from_dict(d: dict[str, Any], source: str | Path | None = None) -> SweepConfig:
    """Validate a sweep given as a dictionary (the parsed TOML).

    Raises
    ------
    SweepError
        Naming ``source`` and the dotted key, e.g.
        ``sweep.toml: variations[1].name: String should have at least 1 character``.
    """
    label = str(source) if source is not None else "sweep"
    if not isinstance(d, dict):
        raise SweepError(f"{label}: expected a table of keys, got {type(d).__name__}")
    if "source" in d:
        raise SweepError(f"{label}: unknown key 'source' (set by the loader); remove it")
    try:
        return SweepConfig(**d, source=Path(source) if source is not None else None)
    except ValidationError as exc:
        raise SweepError(explain_all(exc, label, SweepConfig, _MISSING_HINTS)) from None


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate a sweep TOML file (the base scenario is checked by :func:`base_scenario`)."""
    path = Path(path)
    return sweep_from_dict(read_toml(path, "sweep file", SweepError), source=path)


def base_scenario(sweep: SweepConfig) -> Scenario:
    """The validated base scenario of a sweep.

    Raises
    ------
    SweepError
        When the base file is missing or invalid (the message names ``base``).
    """
    label = str(sweep.source) if sweep.source is not None else "sweep"
    try:
        if sweep.base is None:
            return default_scenario()
        if isinstance(sweep.base, dict):
            return scenario_from_dict(dict(sweep.base), source=sweep.source)
        path = Path(sweep.base).expanduser()
        path = path if path.is_absolute() or sweep.source is None else sweep.source.parent / path
        return load_scenario(path)
    except ScenarioError as err:
        raise SweepError(f"{label}: base: {err}") from None


# --------------------------------------------------------------------------- applying changes


def _resolved(changes: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``changes`` with relative file paths (``demand.file``, ...) made absolute against ``folder``."""
    out = dict(changes)
    for table, key in PATH_KEYS:
        dotted = f"{table}.{key}"
        if isinstance(out.get(dotted), str) and not Path(out[dotted]).expanduser().is_absolute():
            out[dotted] = str((folder / Path(out[dotted]).expanduser()).resolve())
        sub = out.get(table)
        if isinstance(sub, dict) and isinstance(sub.get(key), str) and not Path(sub[key]).expanduser().is_absolute():
            out[table] = {**sub, key: str((folder / Path(sub[key]).expanduser()).resolve())}
    return out


def apply_changes(scenario: Scenario, changes: dict[str, Any], source: str | Path | None = None) -> Scenario:
    """A new scenario: ``scenario`` with dotted-key ``changes`` applied, validated again.

    A thin layer over :meth:`Scenario.with_ <sectorize.config.scenario.Scenario.with_>`
    that resolves relative file paths in the changes against the sweep file.

    Parameters
    ----------
    scenario
        The base scenario (not modified).
    changes
        ``{"model.tolerance": 0.05, "groups.count": 3}``: a dotted key sets
        one value; a table value is merged into the section there; lists and
        scalars replace. ``groups.count`` alone regenerates the group names,
        ``model.tolerance`` alone keeps ``model.group_tolerance`` at half the
        tolerance when the base had it so.
    source
        The sweep file: relative paths in ``changes`` (``demand.file``,
        ``region.units``, ``travel.matrix``, ``output.dir``) resolve against
        its folder (else against the current folder).

    Raises
    ------
    ScenarioError
        When the result is not a valid scenario (the message names the key).

    Example
    -------
    >>> from sectorize.config.scenario import default_scenario
    >>> apply_changes(default_scenario(), {"groups.count": 3}).groups.names
    ['A', 'B', 'C']
    """
    folder = Path(source).parent if source is not None else Path.cwd()
    return scenario.with_(_resolved(changes, folder))
