"""Drafts of the web app (:mod:`sectorize.app.draft`): moves, locks, undo/redo, the review after every
move (checked against the independent checker), saving to the registry, and the drafts kept on disk
across a restart. On the real AURA plan of the ``aura_run`` fixture."""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

from sectorize.app.draft import Draft, DraftStore, LockedError, context_for
from sectorize.pipeline.edit import _scenario
from sectorize.pipeline.inputs import load_region
from sectorize.pipeline.recheck import recheck
from sectorize.store.registry import Registry, RegistryError


@pytest.fixture(scope="module")
def parent(aura_registry):
    folder, plan_id = aura_registry
    return Registry(folder).get(plan_id)


@pytest.fixture()
def draft(parent):
    return Draft(context_for(parent), parent)


def neighbours(draft, u):
    adj = draft.context.adjacency
    return adj.indices[adj.indptr[u]:adj.indptr[u + 1]]


def border_moves(draft):
    """``(unit, sector number)`` pairs: a commune and the sector of a neighbour across a border,
    heaviest commune first."""
    a, e, w = draft.assignment, draft.context.edges, draft.context.workload
    pairs = {(int(u), int(a[v])) for x, y in e.T for u, v in ((x, y), (y, x)) if a[u] != a[v]}
    return sorted(pairs, key=lambda p: (-w[p[0]], p))


def sector_row(review, name):
    return next(row for row in review.sectors if row["sector"] == name)


def test_move_changes_the_caseload_of_both_sectors_by_the_commune_workload(draft):
    ctx = draft.context
    before = draft.review()
    assert before.valid and before.problems == []
    assert before.changes["communes"] == 0 and before.changes["against"] == draft.parent_id
    u, k = next((u, k) for u, k in border_moves(draft) if ctx.workload[u] > 0)
    code, old, new = str(ctx.keys[u]), draft.sector_of(str(ctx.keys[u])), draft.sectors[k]
    after = draft.move([code], new)
    w = ctx.workload[u]
    assert sector_row(after, new)["caseload"] == pytest.approx(sector_row(before, new)["caseload"] + w, abs=2e-3)
    assert sector_row(after, old)["caseload"] == pytest.approx(sector_row(before, old)["caseload"] - w, abs=2e-3)
    assert sector_row(after, new)["communes"] == sector_row(before, new)["communes"] + 1
    assert sector_row(after, old)["communes"] == sector_row(before, old)["communes"] - 1
    # targets are the FTE shares of the total caseload, as the checker computes them
    fte = parent_fte(draft)
    total = float(ctx.workload.sum())
    for row in after.sectors:
        assert row["target"] == pytest.approx(total * fte[row["worker_id"]] / sum(fte.values()), abs=1e-3)
        assert row["deviation_pct"] == pytest.approx(100 * (row["caseload"] / row["target"] - 1), abs=0.02)
    assert draft.moves() == {code: new}
    assert after.changes["communes"] == 1 and after.changes["units"] == [code]
    assert after.changes["unit"] == "caseload units" and after.changes["patients"] == pytest.approx(w)
    assert draft.move([code], new) is after          # already there: no step, same review
    assert len(draft._undo) == 1


def parent_fte(draft):
    workers = draft.parent.workers
    return dict(zip(workers["worker_id"].astype(str), workers["fte"].astype(float)))


def test_move_that_cuts_a_sector_is_a_contiguity_problem_naming_it(draft):
    ctx = draft.context
    lyon = draft.sector_of("69388")
    k = draft.sectors.index(lyon)
    a = draft.assignment
    far = next(u for u in range(ctx.n) if a[u] != k and not (a[neighbours(draft, u)] == k).any())
    code = str(ctx.keys[far])
    review = draft.move([code], lyon)
    assert not review.valid
    row = sector_row(review, lyon)
    assert row["pieces"] == 2 and row["contiguous"] is False
    cut = [p for p in review.problems if p["kind"] == "contiguity" and p["sectors"] == [lyon]]
    assert len(cut) == 1 and p_blocking(cut)
    assert "contiguity" in cut[0]["message"] and f"sector {lyon}" in cut[0]["message"]
    assert "2 pieces" in cut[0]["message"] and code in cut[0]["message"]


def p_blocking(problems):
    return all(p["blocking"] for p in problems)


def test_undo_and_redo_restore_exactly(draft):
    ctx = draft.context
    moves = border_moves(draft)
    u1, k1 = moves[0]
    block = [int(u) for u in np.flatnonzero(draft.assignment == draft.assignment[moves[5][0]])[:30]]
    steps = [([str(ctx.keys[u1])], draft.sectors[k1]),
             ([str(ctx.keys[u]) for u in block], draft.sectors[moves[5][1]]),
             (["69388", "69381"], draft.sectors[(draft.sectors.index(draft.sector_of("69388")) + 1) % 11])]
    states = [(draft.assignment, json.dumps(draft.review().as_dict(), sort_keys=True))]
    for units, sector in steps:
        draft.move(units, sector)
        states.append((draft.assignment, json.dumps(draft.review().as_dict(), sort_keys=True)))
    assert draft.can_undo and not draft.can_redo
    for assignment, review in reversed(states[:-1]):
        draft.undo()
        assert np.array_equal(draft.assignment, assignment)
        assert json.dumps(draft.review().as_dict(), sort_keys=True) == review
    assert draft.moves() == {} and not draft.can_undo and draft.can_redo
    with pytest.raises(ValueError, match="nothing to undo"):
        draft.undo()
    for assignment, review in states[1:]:
        draft.redo()
        assert np.array_equal(draft.assignment, assignment)
        assert json.dumps(draft.review().as_dict(), sort_keys=True) == review
    with pytest.raises(ValueError, match="nothing to redo"):
        draft.redo()
    draft.undo()
    draft.move(steps[0][0], draft.sectors[(k1 + 1) % 11])   # a new change forgets what was undone
    assert not draft.can_redo


def test_locked_communes_and_sectors_are_refused_by_name(draft):
    ctx = draft.context
    (u, k), *_ = border_moves(draft)
    code, target = str(ctx.keys[u]), draft.sectors[k]
    home = draft.sector_of(code)
    draft.lock(units=[code])
    before = draft.assignment
    with pytest.raises(LockedError, match=code) as refused:
        draft.move([code, "69388"], target)
    assert refused.value.units == [code]
    draft.lock(units=[code], locked=False)
    draft.lock(sectors=[target])
    with pytest.raises(LockedError, match=f"locked sector\\(s\\) {target}") as refused:
        draft.move([code], target)
    assert refused.value.sectors == [target]
    draft.lock(sectors=[target], locked=False)
    draft.lock(sectors=[home])
    with pytest.raises(LockedError, match=f"would leave locked sector\\(s\\) {home}"):
        draft.move([code], target)
    assert np.array_equal(draft.assignment, before)           # nothing moved
    state = draft.state()
    assert state["locked_sectors"] == [home] and state["locked_units"] == []
    assert sector_row(draft.review(), home)["locked"] is True
    assert set(draft.locked_codes()) == {str(c) for c in ctx.keys[draft.assignment == draft.sectors.index(home)]}
    draft.lock(sectors=[home], locked=False)
    draft.move([code], target)
    draft.lock(units=[code])
    with pytest.raises(LockedError, match=code):              # undo does not move a commune locked since
        draft.undo()
    with pytest.raises(ValueError, match="'99999'.*not a commune"):
        draft.move(["99999", code], target)
    with pytest.raises(ValueError, match="'Z9'.*no such sector"):
        draft.move([code], "Z9")
    with pytest.raises(ValueError, match="no commune given"):
        draft.move([], target)


def test_replace_is_one_undoable_step_and_keeps_locks(draft):
    ctx = draft.context
    moves = border_moves(draft)[:20]
    new = draft.assignment
    for u, k in moves:
        new[u] = k
    mapping = dict(zip(map(str, ctx.keys), (draft.sectors[k] for k in new)))
    locked = str(ctx.keys[moves[0][0]])
    draft.lock(units=[locked])
    with pytest.raises(LockedError, match=locked):
        draft.replace(mapping)
    draft.lock(units=[locked], locked=False)
    version = draft.version
    draft.replace(mapping, base_version=version)
    assert np.array_equal(draft.assignment, new) and len(draft._undo) == 1
    draft.undo()
    assert draft.moves() == {}
    from sectorize.app.draft import DraftChangedError

    with pytest.raises(DraftChangedError):
        draft.replace(mapping, base_version=version)
    with pytest.raises(ValueError, match="lacks 1 commune"):
        draft.replace({c: s for c, s in list(mapping.items())[1:]})


def test_state_is_the_design_json(draft):
    state = draft.state()
    assert set(state) == {"id", "parent_id", "in_force_id", "assignment", "locked_units", "locked_sectors",
                          "can_undo", "can_redo", "review"}
    review = state["review"]
    assert set(review) == {"sectors", "problems", "travel", "changes", "valid"}
    assert set(review["sectors"][0]) == {"sector", "group", "worker_id", "worker_name", "target", "caseload",
                                         "deviation_pct", "communes", "contiguous", "pieces", "locked",
                                         "travel_mean_min", "travel_max_min"}
    assert set(review["travel"]) == {"mean_min", "p90_min", "max_min"}
    assert set(review["changes"]) == {"against", "communes", "patients", "unit", "units"}
    assert len(state["assignment"]) == draft.context.n == 4033
    json.dumps(state, allow_nan=False)
    # travel: caseload-weighted minutes from each worker's base, within the sector figures
    t = review["travel"]
    assert 0 < t["mean_min"] <= t["p90_min"] <= t["max_min"]
    assert t["max_min"] == max(r["travel_max_min"] for r in review["sectors"])
    ctx, a = draft.context, draft.assignment
    minutes = ctx.travel_base[np.arange(ctx.n), a]
    assert t["mean_min"] == pytest.approx(ctx.workload @ minutes / ctx.workload.sum(), abs=0.05)


def _checker_problems(parent, registry_units, graph, assignment, sectors):
    """``{(kind, "sector"|"group", name)}`` from the independent checker (recheck) on the tables."""
    table = parent.sectors.copy()
    table["insee"] = table["insee"].astype(str)
    workers = parent.workers.assign(sector=parent.workers["sector"].astype(str)).set_index("sector")
    order = table["insee"].map({str(k): i for i, k in enumerate(registry_units.index)}).to_numpy()
    names = np.array(sectors, dtype=object)[assignment[order]]
    table["sector"] = names
    table["worker_id"] = workers.loc[names, "worker_id"].to_numpy()
    table["group"] = workers.loc[names, "group"].astype(str).to_numpy()
    _, violations = recheck(_scenario(parent, None), registry_units, graph, table, parent.workers)
    found = set()
    for v in violations:
        if m := re.match(r"(sector|group) (\S+) is empty", v):
            found.add(("empty", m[1], m[2]))
        elif m := re.match(r"(sector|group) (\S+) is not connected", v):
            found.add(("contiguity", m[1], m[2]))
        elif m := re.match(r"(sector|group) (\S+) caseload .* is outside", v):
            found.add(("balance", m[1], m[2]))
        elif m := re.match(r"sector (\S+) covers .* territory cap", v):
            found.add(("territory", "sector", m[1]))
        elif v.startswith("groups.keep_together"):
            found.add(("keep_together", "", ""))
        else:
            found.add(("other", v, ""))
    return found


def _review_problems(review):
    found = set()
    for p in review.problems:
        if not p["blocking"]:
            continue
        m = re.match(r"(\w+): (sector|group) (\S+)", p["message"])
        found.add((p["kind"], m[2], m[3]) if m else (p["kind"], "", ""))
    return found


def test_review_agrees_with_the_independent_checker_after_random_moves(draft):
    """Random walks of moves across borders from the parent (seeded); after each walk the review's
    problems are those the independent checker finds on the same tables (sector and group pieces,
    bands, caps, Lyon's arrondissements in one group)."""
    ctx = draft.context
    region = load_region(_scenario(draft.parent, None))
    rng = np.random.default_rng(20)
    seen_kinds = set()
    for walk in range(10):
        while draft.can_undo:
            draft.undo()
        for _ in range(int(rng.integers(1, 5) if walk < 6 else rng.integers(10, 40))):
            a = draft.assignment
            e = ctx.edges[:, a[ctx.edges[0]] != a[ctx.edges[1]]]
            i = int(rng.integers(e.shape[1]))
            u, v = (e[0, i], e[1, i]) if rng.random() < 0.5 else (e[1, i], e[0, i])
            draft.move([str(ctx.keys[u])], draft.sectors[a[v]])
        if walk == 3:  # Lyon split between groups (and a piece of a sector far from it)
            group = {row["sector"]: row["group"] for row in draft.review().sectors}
            other = next(s for s in draft.sectors if group[s] != group[draft.sector_of("69382")])
            draft.move(["69381"], other)
        review = draft.review()
        expected = _checker_problems(draft.parent, region.units, region.graph, draft.assignment, draft.sectors)
        assert _review_problems(review) == expected, walk
        assert review.valid == (not expected)
        seen_kinds |= {kind for kind, _, _ in expected}
    assert {"contiguity", "balance", "keep_together"} <= seen_kinds


def test_save_stores_a_child_plan_whose_validity_matches_the_checker(registry_copy):
    folder, parent_id = registry_copy
    reg = Registry(folder)
    parent = reg.get(parent_id)
    draft = Draft(context_for(parent), parent)
    ctx = draft.context
    for u, k in reversed(border_moves(draft)):   # the lightest border commune whose move keeps the plan valid
        if draft.move([str(ctx.keys[u])], draft.sectors[k]).valid:
            break
        draft.undo()
    assert draft.review().valid and len(draft.moves()) == 1
    plan_id, valid, violations = draft.save(reg, "moved by hand", "marie")
    child = reg.get(plan_id)
    assert (valid, violations) == (True, []) and child.valid and child.parent_id == parent_id
    assert "marie" in child.note and draft.id in child.note and child.effective_from is None
    table = child.sectors.set_index("insee")
    assert {c: table.at[c, "sector"] for c in draft.moves()} == draft.moves()
    assert (table["sector"].astype(str).reindex(ctx.keys).to_numpy()
            == np.array(draft.sectors, dtype=object)[draft.assignment]).all()

    lyon = draft.sector_of("69388")
    a = draft.assignment
    far = next(u for u in range(ctx.n) if a[u] != draft.sectors.index(lyon)
               and not (a[neighbours(draft, u)] == draft.sectors.index(lyon)).any())
    review = draft.move([str(ctx.keys[far])], lyon)
    assert not review.valid
    plan_id, valid, violations = draft.save(reg, "cut", "marie")
    child = reg.get(plan_id)
    assert valid is False and child.valid is False and child.parent_id == parent_id
    assert any(f"sector {lyon} is not connected" in v for v in violations)
    assert list(child.violations) == violations
    with pytest.raises(RegistryError, match="never published"):
        reg.publish(plan_id, "2027-01-01")


def test_draft_store_reloads_drafts_after_a_restart(registry_copy):
    folder, parent_id = registry_copy
    reg = Registry(folder)
    parent = reg.get(parent_id)
    store = DraftStore(folder)
    draft = store.open(parent, parent)
    ctx = draft.context
    (u, k), (u2, k2), *_ = border_moves(draft)
    draft.move([str(ctx.keys[u])], draft.sectors[k])
    draft.move([str(ctx.keys[u2])], draft.sectors[k2])
    draft.lock(units=["69388"], sectors=[draft.sectors[0]])
    path = folder / "drafts" / f"{draft.id}.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    assert set(record) == {"format", "id", "parent_id", "in_force_id", "created", "updated", "moves",
                           "locked_units", "locked_sectors"}
    assert record["moves"] == draft.moves() and record["in_force_id"] == parent_id
    assert store.get(draft.id) is draft

    restarted = DraftStore(folder)                    # a new server process
    assert restarted.ids() == [draft.id]
    again = restarted.get(draft.id)
    assert again is not draft and again.moves() == draft.moves()
    assert again.locked_units == {"69388"} and again.locked_sectors == {draft.sectors[0]}
    assert np.array_equal(again.assignment, draft.assignment)
    assert again.review().as_dict() == draft.review().as_dict()
    assert not again.can_undo                        # the history is not kept across a restart
    with pytest.raises(KeyError, match="draft 'nope' not found"):
        restarted.get("nope")

    small = DraftStore(folder, max_open=1)            # beyond max_open: dropped from memory, kept on disk
    first, second = small.open(parent), small.open(parent)
    first.move([str(ctx.keys[u])], draft.sectors[k])
    first_moves = first.moves()
    second.move([str(ctx.keys[u2])], draft.sectors[k2])
    reloaded = small.get(first.id)
    assert reloaded is not first and reloaded.moves() == first_moves
    small.discard(first.id)
    assert first.id not in small and not (folder / "drafts" / f"{first.id}.json").exists()


def test_concurrent_moves_on_one_draft(draft):
    ctx = draft.context
    pairs = border_moves(draft)
    chosen, used = [], set()
    for u, k in pairs:
        if u not in used:
            chosen.append((u, k))
            used.add(u)
        if len(chosen) == 40:
            break

    def work(part):
        for u, k in part:
            draft.move([str(ctx.keys[u])], draft.sectors[k])
            draft.review()

    threads = [threading.Thread(target=work, args=(chosen[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert draft.moves() == {str(ctx.keys[u]): draft.sectors[k] for u, k in chosen}
    assert draft.review().changes["communes"] == 40
    while draft.can_undo:
        draft.undo()
    assert draft.moves() == {}


def test_the_store_changes_drafts_by_id_as_the_web_app_does(parent):
    store = DraftStore(None)                          # memory only
    draft = store.open(parent)
    (u, k), *_ = border_moves(draft)
    code, target = str(draft.context.keys[u]), draft.sectors[k]
    assert store.undo(draft.id) is None and store.redo(draft.id) is None    # nothing to undo: no error
    assert store.move(draft.id, [code], target).changes["units"] == [code]
    store.lock(draft.id, units=[code])
    with pytest.raises(PermissionError, match=code) as refused:             # the web app answers 409
        store.undo(draft.id)
    assert not isinstance(refused.value, ValueError)                         # (422 is for bad requests)
    store.lock(draft.id, units=[code], locked=False)
    assert store.undo(draft.id).changes["communes"] == 0
    assert store.redo(draft.id).changes["units"] == [code]
    whole = {str(c): draft.sectors[w] for c, w in zip(draft.context.keys, draft.assignment)}
    whole[code] = draft.sector_of(code)
    assert store.replace(draft.id, whole).changes["units"] == [code]
    with pytest.raises(KeyError, match="not found"):
        store.move("nope", [code], target)
    assert store.ids() == [draft.id] and not (parent.id in store)


def test_emptying_a_sector_is_reported_and_cannot_be_saved(draft):
    from sectorize.pipeline.edit import EditError

    review = draft.review()
    smallest = min(review.sectors, key=lambda row: row["communes"])
    name = smallest["sector"]
    members = [str(c) for c in draft.context.keys[draft.assignment == draft.sectors.index(name)]]
    other = next(s for s in draft.sectors if s != name)
    review = draft.move(members, other)
    empty = [p for p in review.problems if p["kind"] == "empty"]
    assert [p["sectors"] for p in empty] == [[name]] and "empty" in empty[0]["message"]
    row = sector_row(review, name)
    assert (row["communes"], row["caseload"], row["pieces"], row["travel_mean_min"]) == (0, 0.0, 0, None)
    assert not review.valid
    with pytest.raises(EditError, match="no commune left"):
        draft.to_plan()
