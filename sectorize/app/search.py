"""Find a commune from what the coordinator types: a name, a postcode or an INSEE code.

The referral desk has one search box. What people type is a commune name as
it appears on a referral letter ("st etienne", "VILLEURBANNE", "Chambéry",
"l'isle d'abeau"), a postcode ("42000") or an INSEE code ("69266", "2A004").
:class:`CommuneIndex` turns that text into something the router answers
(:meth:`sectorize.serve.routing.Router.route`):

* names are compared after :func:`fold`: accents, case, hyphens and
  apostrophes ignored, ``saint``/``sainte`` written ``st``/``ste``, so
  "Saint-Étienne", "st etienne" and "SAINT ETIENNE" are the same key;
* a name shared by several communes (homonyms: there are 5 "Vaux" in
  France, several "Saint-Martin-…" in the region) is never guessed: the desk
  shows the candidates labelled with their department, most populated first;
* five characters that are both the INSEE code of one commune and the
  postcode of another ("69001" is Affoux's INSEE code and Lyon 1er's
  postcode) are shown as two choices;
* "Lyon" (a commune split into arrondissements in the plan) is kept as a
  name: the router shares it between the arrondissements' sectors.

Suggestions (:meth:`CommuneIndex.suggest`) are name prefixes first, then
names with a word starting with the text, then postcodes and codes starting
with it; within each kind the most populated first (the commune a
coordinator most likely means).

Example
-------
>>> index = CommuneIndex(pd.DataFrame({"insee": ["42218", "69266"], "name": ["Saint-Étienne", "Villeurbanne"],
...                                    "dep": ["42", "69"], "population": [173000, 156000],
...                                    "postcodes": ["42000|42100", "69100"]}))
>>> index.resolve("st etienne").insee
'42218'
>>> [s.label for s in index.suggest("vil")]
['Villeurbanne (69)']
>>> index.resolve("69100").postcode
'69100'
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd

#: Longest text searched (characters); longer text is refused by the caller.
MAX_QUERY_CHARS = 120

_SPACES = re.compile(r"[\s\-'’`´_.,/]+")
_CODE = re.compile(r"^(?:\d{5}|2[AaBb]\d{3})$")
_WORD_FORMS = {"saint": "st", "sainte": "ste"}


def fold(text: str) -> str:
    """The search key of a name: no accents, lower case, one space between words, ``saint`` -> ``st``.

    >>> fold("Saint-Étienne-de-Saint-Geoirs")
    'st etienne de st geoirs'
    >>> fold("L’Isle-d'Abeau")
    'l isle d abeau'
    """
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    plain = plain.replace("œ", "oe").replace("æ", "ae")
    words = [w for w in _SPACES.split(plain) if w]
    return " ".join(_WORD_FORMS.get(w, w) for w in words)


@dataclass(frozen=True)
class Suggestion:
    """One suggestion of the search box.

    Attributes
    ----------
    label
        What the list shows: ``"Villeurbanne (69)"``, ``"CP 42000 — Saint-Étienne"``,
        ``"Affoux (69) — INSEE 69001"``.
    q
        What to search when it is chosen: ``"insee:69266"`` or ``"cp:42000"``.
    insee
        The commune's INSEE code (``None`` for a postcode).
    kind
        ``"commune"``, ``"postcode"`` or ``"insee"``.
    """

    label: str
    q: str
    insee: str | None
    kind: str

    def as_dict(self) -> dict[str, str | None]:
        return {"label": self.label, "q": self.q, "insee": self.insee, "kind": self.kind}


@dataclass(frozen=True)
class Resolved:
    """What a search text means: one commune, one postcode, a choice, or nothing.

    Exactly one of ``insee``, ``postcode``, ``choices`` (two or more) is set,
    or none with ``message`` saying why.
    """

    insee: str | None = None
    postcode: str | None = None
    choices: tuple[Suggestion, ...] = field(default_factory=tuple)
    message: str = ""


class CommuneIndex:
    """Search index over the communes of a plan.

    Parameters
    ----------
    communes
        One row per commune: ``insee`` (str), ``name``, ``dep``, and
        optionally ``population`` (inhabitants, to order homonyms and
        suggestions) and ``postcodes`` (``"69001|69002"`` or a list).
    aliases
        Extra ``{name: insee}`` entries (e.g. ``{"Lyon": "69123"}`` when the
        plan holds Lyon's arrondissements).
    """

    def __init__(self, communes: pd.DataFrame, aliases: dict[str, str] | None = None) -> None:
        table = communes.reset_index() if "insee" not in communes.columns else communes
        self._rows: dict[str, dict] = {}
        self._by_name: dict[str, list[str]] = {}
        self._by_postcode: dict[str, list[str]] = {}
        for row in table.to_dict("records"):
            code = str(row["insee"])
            population = pd.to_numeric(row.get("population", 0), errors="coerce")
            population = 0.0 if pd.isna(population) else float(population)
            postcodes = row.get("postcodes", "")
            if isinstance(postcodes, str):
                postcodes = [p for p in postcodes.split("|") if p]
            elif postcodes is None or (not isinstance(postcodes, (list, tuple)) and pd.isna(postcodes)):
                postcodes = []
            else:
                postcodes = [str(p) for p in postcodes]
            self._rows[code] = {"name": str(row["name"]), "dep": str(row["dep"]), "population": population,
                                "key": fold(row["name"])}
            self._by_name.setdefault(fold(row["name"]), []).append(code)
            for postcode in postcodes:
                self._by_postcode.setdefault(postcode, []).append(code)
        for name, code in (aliases or {}).items():
            self._rows.setdefault(code, {"name": name, "dep": code[:2], "population": 0.0, "key": fold(name)})
            self._by_name.setdefault(fold(name), []).append(code)
        for codes in self._by_name.values():
            codes.sort(key=lambda c: (-self._rows[c]["population"], c))
        self._names = sorted(self._by_name, key=lambda k: -max(self._rows[c]["population"] for c in self._by_name[k]))

    def __len__(self) -> int:
        return len(self._rows)

    def name(self, insee: str) -> str | None:
        """The commune's name, or ``None``."""
        row = self._rows.get(insee)
        return row["name"] if row else None

    def _commune(self, code: str, kind: str = "commune") -> Suggestion:
        row = self._rows[code]
        label = f"{row['name']} ({row['dep']})" if kind == "commune" else f"{row['name']} ({row['dep']}) — INSEE {code}"
        return Suggestion(label, f"insee:{code}", code, kind)

    def _postcode(self, postcode: str) -> Suggestion:
        names = [self._rows[c]["name"] for c in self._by_postcode[postcode]]
        shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        return Suggestion(f"CP {postcode} — {shown}", f"cp:{postcode}", None, "postcode")

    def resolve(self, text: str) -> Resolved:
        """What ``text`` designates (see the module docstring for the rules).

        ``"insee:CODE"`` and ``"cp:CODE"`` (what a suggestion carries) are
        taken as they are.
        """
        raw = str(text).strip()
        if raw.lower().startswith("insee:"):
            return Resolved(insee=raw[6:].strip().upper())
        if raw.lower().startswith("cp:"):
            return Resolved(postcode=raw[3:].strip())
        if _CODE.match(raw):
            code = raw.upper()
            is_commune = code in self._rows
            is_postcode = code in self._by_postcode
            if is_commune and is_postcode and self._by_postcode[code] != [code]:
                return Resolved(choices=(self._postcode(code), self._commune(code, "insee")))
            if is_postcode:
                return Resolved(postcode=code)
            return Resolved(insee=code)  # the router knows old codes and places outside the region
        key = fold(raw)
        if not key:
            return Resolved(message="type a commune name, a postcode or an INSEE code")
        codes = self._by_name.get(key, [])
        if len(codes) == 1:
            return Resolved(insee=codes[0])
        if len(codes) > 1:
            return Resolved(choices=tuple(self._commune(c) for c in codes))
        near = self.suggest(raw, limit=8)
        if len(near) == 1 and near[0].insee:
            return Resolved(insee=near[0].insee)
        if near:
            return Resolved(choices=tuple(near), message=f"no commune is called {raw!r}; did you mean one of these?")
        return Resolved(message=f"no commune, postcode or INSEE code matches {raw!r}")

    def suggest(self, text: str, limit: int = 10) -> list[Suggestion]:
        """Up to ``limit`` suggestions for the text typed so far (see the module docstring for the order)."""
        raw = str(text).strip()
        if not raw:
            return []
        out: list[Suggestion] = []
        seen: set[str] = set()

        def take(items) -> bool:
            for item in items:
                if item.q not in seen:
                    seen.add(item.q)
                    out.append(item)
                    if len(out) >= limit:
                        return True
            return False

        if raw[:1].isdigit() or raw[:2].upper() in ("2A", "2B"):
            code = raw.upper()
            postcodes = sorted(p for p in self._by_postcode if p.startswith(code))
            communes = sorted(c for c in self._rows if c.startswith(code))
            take(self._postcode(p) for p in postcodes[:limit])
            take(self._commune(c, "insee") for c in communes[:limit])
            return out
        key = fold(raw)
        if not key:
            return []
        prefix = (c for k in self._names if k.startswith(key) for c in self._by_name[k])
        if take(self._commune(c) for c in prefix):
            return out
        inner = (c for k in self._names if f" {key}" in f" {k}" and not k.startswith(key) for c in self._by_name[k])
        take(self._commune(c) for c in inner)
        return out
