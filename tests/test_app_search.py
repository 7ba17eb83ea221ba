"""The desk's search box over the real AURA communes: names, homonyms, postcodes, INSEE codes."""

from __future__ import annotations

import pytest

from sectorize.app.search import CommuneIndex, fold


@pytest.fixture(scope="module")
def index(aura_lyon):
    units = aura_lyon.units.reset_index()
    units["postcodes"] = ["|".join(p) for p in units["postcodes"]]
    return CommuneIndex(units, aliases={"Lyon": "69123"})


@pytest.mark.parametrize("typed", ["Villeurbanne", "VILLEURBANNE", "villeurbanne ", "Villeurbanne"])
def test_a_name_is_found_whatever_its_case(index, typed):
    assert index.resolve(typed).insee == "69266"


@pytest.mark.parametrize("typed", ["Saint-Étienne", "st etienne", "SAINT ETIENNE", "saint-etienne", "St-Étienne"])
def test_accents_hyphens_and_saint_are_folded(index, typed):
    assert index.resolve(typed).insee == "42218"


def test_fold_keeps_words_apart():
    assert fold("L’Isle-d'Abeau") == "l isle d abeau"
    assert fold("Sainte-Foy-lès-Lyon") == "ste foy les lyon"


def test_homonyms_are_never_guessed_and_are_labelled_by_department(index):
    found = index.resolve("Apremont")
    assert found.insee is None and len(found.choices) >= 2
    departments = {c.label.rsplit("(", 1)[1].rstrip(")") for c in found.choices}
    assert len(departments) == len(found.choices)      # one label per department, so the coordinator can tell
    assert all(c.q.startswith("insee:") for c in found.choices)
    assert index.resolve(found.choices[0].q).insee == found.choices[0].insee


def test_a_code_that_is_a_commune_and_another_communes_postcode_is_a_choice(index):
    found = index.resolve("69001")          # INSEE code of Affoux, postcode of Lyon 1er
    kinds = sorted(c.kind for c in found.choices)
    assert kinds == ["insee", "postcode"]
    labels = " ".join(c.label for c in found.choices)
    assert "Affoux" in labels and "Lyon 1er" in labels


def test_postcodes_and_codes(index):
    assert index.resolve("42000").postcode == "42000"
    assert index.resolve("cp:69100").postcode == "69100"
    assert index.resolve("insee:69266").insee == "69266"
    assert index.resolve("2A004").insee == "2A004"        # outside the region: the router says so


def test_lyon_is_a_name_even_when_the_plan_holds_its_arrondissements(index):
    assert index.resolve("lyon").insee == "69123"


def test_suggestions_put_prefixes_and_big_towns_first(index):
    labels = [s.label for s in index.suggest("vill")]
    assert labels[0] == "Villeurbanne (69)" and len(labels) == 10
    inner = [s.label for s in index.suggest("etienne")]
    assert inner[0] == "Saint-Étienne (42)"
    codes = index.suggest("6910")
    assert codes[0].kind == "postcode" and codes[0].q == "cp:69100"


def test_nothing_matches(index):
    found = index.resolve("xyzzy")
    assert found.insee is None and found.postcode is None and not found.choices
    assert "xyzzy" in found.message
    assert index.suggest("") == []
