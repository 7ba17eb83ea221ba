"""Fit the constants of :class:`geodata.travel.TravelTimeModel` on reference car times.

Reference data (validation only, never copied into the project), read from
``--data DIR`` (default ``../shared/data/aura/travel`` next to the repository):

* ``isere_osrm_2021_matrix.csv.gz``: OSRM car minutes between the 512 communes
  of Isère, every ordered pair (261,632);
* ``cities10k_ors_2025_aura.csv``: openrouteservice car minutes between 102
  AURA towns (8,028 ordered pairs).

The two data sets get equal total weight. The fit minimises the squared error
of ``ln minutes`` (a relative error), over the hop pace, the curve and the unit
factors together: for fixed shortest paths the network time of a pair is a
sum over its hops, so the paths are recomputed a few times (outer loop) and
the coefficients refitted with :func:`scipy.optimize.least_squares` in
between. Unit points are the region's (``pt_lon, pt_lat`` of the shipped
communes), not the routed points of the sources.

Usage::

    python benchmarks/calibrate_travel_time.py            # fit on all pairs, print the constants
    python benchmarks/calibrate_travel_time.py --data DIR

:func:`cross_validate` refits the model without the pairs touching one
quarter of the communes and predicts the pairs leaving those communes; the
benchmark ``bench_travel_time.py`` reports those held-out errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import least_squares
from scipy.sparse.csgraph import dijkstra

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from geodata.regions import load_aura  # noqa: E402
from geodata.travel import (  # noqa: E402
    EDGE_FEATURES,
    UNIT_FEATURES,
    NetworkFeatures,
    TravelTimeModel,
    great_circle_km,
    network_features,
)

#: Default folder of the reference travel times.
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "aura" / "travel"
ISERE = "isere_osrm_2021_matrix.csv.gz"
TOWNS = "cities10k_ors_2025_aura.csv"


@dataclass(frozen=True)
class Pairs:
    """Reference pairs aligned on the region's unit positions.

    ``origin``/``destination`` are positions in the region's keys,
    ``minutes`` the reference car time, ``dataset`` the name of each pair's
    data set (``"isere"`` or ``"towns"``).
    """

    origin: np.ndarray
    destination: np.ndarray
    minutes: np.ndarray
    dataset: np.ndarray

    def subset(self, mask: np.ndarray) -> "Pairs":
        return Pairs(self.origin[mask], self.destination[mask], self.minutes[mask], self.dataset[mask])

    def __len__(self) -> int:
        return len(self.minutes)


def load_pairs(data: pathlib.Path, keys: pd.Index) -> Pairs:
    """The Isère matrix and the town pairs, as positions in ``keys``.

    Raises ``ValueError`` naming the file when a code is not a unit.
    """
    parts = []
    for name, label in ((ISERE, "isere"), (TOWNS, "towns")):
        table = pd.read_csv(data / name, dtype={"origin_insee": str, "dest_insee": str})
        o = keys.get_indexer(table["origin_insee"])
        d = keys.get_indexer(table["dest_insee"])
        if (o < 0).any() or (d < 0).any():
            bad = sorted(set(table["origin_insee"][o < 0]) | set(table["dest_insee"][d < 0]))
            raise ValueError(f"{data / name}: codes that are not AURA communes: {bad[:5]}")
        parts.append(pd.DataFrame({"o": o, "d": d, "t": table["minutes"].astype(float), "set": label}))
    both = pd.concat(parts, ignore_index=True)
    both = both[both["o"] != both["d"]]
    return Pairs(both["o"].to_numpy(), both["d"].to_numpy(), both["t"].to_numpy(), both["set"].to_numpy())


def _weights(pairs: Pairs) -> np.ndarray:
    """Per-pair weights giving each data set the same total weight (mean 1)."""
    w = np.zeros(len(pairs))
    for label in np.unique(pairs.dataset):
        m = pairs.dataset == label
        w[m] = 1.0 / m.sum()
    return w / w.mean()


def _path_incidence(features: NetworkFeatures, hop: np.ndarray, pairs: Pairs) -> sp.csr_matrix:
    """``(pairs, hops)`` 0/1 matrix: the hops on each pair's shortest path for hop times ``hop``."""
    sources = np.unique(pairs.origin)
    row = np.searchsorted(sources, pairs.origin)
    _, pred = dijkstra(features.adjacency(hop), indices=sources, return_predecessors=True)
    r, c = [], []
    pair = np.arange(len(pairs))
    node = pairs.destination.copy()
    while len(pair):
        parent = pred[row[pair], node]
        ok = parent >= 0
        pair, node, parent = pair[ok], node[ok], parent[ok]
        r.append(pair)
        c.append(features.edge_index(parent, node))
        node = parent
    r, c = np.concatenate(r), np.concatenate(c)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(pairs), len(features.edge_km)))


def _unpack(p: np.ndarray, model: TravelTimeModel) -> TravelTimeModel:
    q, k = len(EDGE_FEATURES), len(model.curve_knots_min)
    return dataclasses.replace(
        model,
        pace=tuple(float(v) for v in p[:q]),
        curve_intercept=float(p[q]),
        curve_slope=float(p[q + 1]),
        curve_knot_slopes=tuple(float(v) for v in p[q + 2:q + 2 + k]),
        access=tuple(float(v) for v in p[q + 2 + k:]),
    )


def fit(features: NetworkFeatures, pairs: Pairs, start: TravelTimeModel | None = None,
        outer: int = 4) -> TravelTimeModel:
    """Fit pace, curve and unit factors on ``pairs`` (least squares on ln minutes).

    ``start`` supplies the structural constants (knots, clips, radii); its
    coefficients are ignored. The search starts from a pace of 1.5 min/km,
    a curve slope of 0.8 and every other coefficient 0.
    """
    start = start or TravelTimeModel()
    q, k, u = len(EDGE_FEATURES), len(start.curve_knots_min), len(UNIT_FEATURES)
    p = np.zeros(q + 2 + k + u)
    p[0], p[q], p[q + 1] = np.log(1.5), 0.3, 0.8
    Z, H = features.edge_features, features.unit_features
    o, d, y = pairs.origin, pairs.destination, np.log(pairs.minutes)
    w = np.sqrt(_weights(pairs))
    knots = np.log(np.asarray(start.curve_knots_min))
    for _ in range(outer):
        hop = features.edge_km * np.exp(Z @ p[:q])
        P = _path_incidence(features, hop, pairs)
        HH = H[o] + H[d]

        def parts(p):
            hop = features.edge_km * np.exp(Z @ p[:q])
            T = P @ hop
            x = np.log(T)
            hinge = np.maximum(0.0, x[:, None] - knots[None, :])
            pred = p[q] + p[q + 1] * x + hinge @ p[q + 2:q + 2 + k] + HH @ p[q + 2 + k:]
            return hop, T, x, hinge, pred

        def residual(p):
            return w * (parts(p)[4] - y)

        def jacobian(p):
            hop, T, x, hinge, _ = parts(p)
            slope = p[q + 1] + (x[:, None] > knots[None, :]) @ p[q + 2:q + 2 + k]
            d_pace = (slope / T)[:, None] * np.asarray(P @ (hop[:, None] * Z))
            return w[:, None] * np.column_stack([d_pace, np.ones(len(x)), x, hinge, HH])

        p = least_squares(residual, p, jac=jacobian, max_nfev=60).x
    return _unpack(p, start)


def predict(features: NetworkFeatures, model: TravelTimeModel, pairs: Pairs) -> np.ndarray:
    """Estimated minutes of each pair (Dijkstra from each origin)."""
    hop = model.hop_minutes(features)
    factor = model.unit_factors(features)
    sources = np.unique(pairs.origin)
    T = dijkstra(features.adjacency(hop), indices=sources)[np.searchsorted(sources, pairs.origin), pairs.destination]
    return model.minutes(T, factor[pairs.origin], factor[pairs.destination])


def fold_of(keys: pd.Index, folds: int = 4) -> np.ndarray:
    """Deterministic fold of each unit (CRC-32 of its key, modulo ``folds``)."""
    return np.array([zlib.crc32(str(k).encode()) % folds for k in keys])


def cross_validate(features: NetworkFeatures, pairs: Pairs, folds: int = 4,
                   fitter=None, predictor=None) -> np.ndarray:
    """Held-out predictions: fold ``f`` is predicted by a model fitted without its communes.

    The communes are split into ``folds`` groups (:func:`fold_of`). For each
    group, the model is fitted on the pairs whose origin *and* destination
    are outside it, then predicts every pair whose origin is in it.
    """
    fitter = fitter or fit
    predictor = predictor or predict
    fold = fold_of(features.keys, folds)
    out = np.full(len(pairs), np.nan)
    for f in range(folds):
        train = (fold[pairs.origin] != f) & (fold[pairs.destination] != f)
        test = fold[pairs.origin] == f
        model = fitter(features, pairs.subset(train))
        out[test] = predictor(features, model, pairs.subset(test))
    return out


@dataclass(frozen=True)
class StraightLine:
    """Baseline: ``minutes = intercept + slope * great-circle km``."""

    intercept: float
    slope: float


def fit_straight_line(features: NetworkFeatures, pairs: Pairs) -> StraightLine:
    """Ordinary least squares of minutes on great-circle km (data sets weighted equally)."""
    km = great_circle_km(features.lon[pairs.origin], features.lat[pairs.origin],
                         features.lon[pairs.destination], features.lat[pairs.destination])
    w = np.sqrt(_weights(pairs))
    a, b = np.linalg.lstsq(np.column_stack([w, w * km]), w * pairs.minutes, rcond=None)[0]
    return StraightLine(float(a), float(b))


def predict_straight_line(features: NetworkFeatures, line: StraightLine, pairs: Pairs) -> np.ndarray:
    km = great_circle_km(features.lon[pairs.origin], features.lat[pairs.origin],
                         features.lon[pairs.destination], features.lat[pairs.destination])
    return line.intercept + line.slope * km


def errors(estimate: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """``n``, median and 90th percentile absolute % error, mean signed % error (bias)."""
    pct = (estimate - reference) / reference * 100.0
    return {
        "n_pairs": int(len(pct)),
        "median_ape_pct": round(float(np.median(np.abs(pct))), 2),
        "p90_ape_pct": round(float(np.percentile(np.abs(pct), 90)), 2),
        "mean_bias_pct": round(float(np.mean(pct)), 2),
    }


def model_source(model: TravelTimeModel) -> str:
    """The fitted coefficients as the keyword arguments to paste into ``TravelTimeModel``."""
    def fmt(values):
        return "(" + ", ".join(f"{v:.4f}" for v in values) + ("," if len(values) == 1 else "") + ")"

    return "\n".join([
        f"pace: tuple[float, ...] = {fmt(model.pace)}",
        f"curve_intercept: float = {model.curve_intercept:.4f}",
        f"curve_slope: float = {model.curve_slope:.4f}",
        f"curve_knot_slopes: tuple[float, ...] = {fmt(model.curve_knot_slopes)}",
        f"access: tuple[float, ...] = {fmt(model.access)}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA,
                        help="folder of the reference travel times (default: %(default)s)")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    if not (data / ISERE).is_file() or not (data / TOWNS).is_file():
        print(f"skipped: reference travel times not found in {data}")
        return 0
    region = load_aura()
    features = network_features(region)
    pairs = load_pairs(data, features.keys)
    started = time.perf_counter()
    model = fit(features, pairs)
    print(f"fitted on {len(pairs)} pairs in {time.perf_counter() - started:.1f} s")
    for label in np.unique(pairs.dataset):
        m = pairs.dataset == label
        print(f"  {label}: {errors(predict(features, model, pairs.subset(m)), pairs.minutes[m])} (in-sample)")
    print("\nTravelTimeModel defaults:\n" + model_source(model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
