"""Accuracy and cost of the travel-time estimate against reference car times.

Compares, on the reference data described in ``calibrate_travel_time.py``
(OSRM matrix between the 512 Isère communes; openrouteservice times between
102 AURA towns):

* the baseline, a straight line ``minutes = a + b * great-circle km`` fitted
  by least squares on both data sets (and, as a friendlier baseline, one
  line per data set);
* the shipped :class:`geodata.travel.TravelTimeModel`, whose constants were
  fitted on *all* these pairs (so its figures on them are in-sample);
* the same model form refitted without the communes of one fold and scored on
  the pairs leaving them (4-fold cross-validation by commune: held-out).

The errors are absolute percentage errors ``|estimate - reference| /
reference`` per ordered pair: median, 90th percentile, and the mean signed
error (bias). It also times building the estimate and its dense 4,025 x 4,025
matrix. Commune -> Paris times are not scored: Paris is outside AURA, and the
estimate only routes inside the region's contiguity graph.

Usage::

    python benchmarks/bench_travel_time.py [--data DIR] [--no-cv]

Writes ``benchmarks/results/travel_time.json``. Without the reference data it
prints ``skipped`` and exits 0.
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import calibrate_travel_time as calib  # noqa: E402
from common import RESULTS as RESULTS_DIR, command_line, timestamp

from geodata.regions import load_aura  # noqa: E402
from geodata.travel import estimate_travel_times  # noqa: E402
from sectorize.store.atomic import atomic_write_json

RESULTS = RESULTS_DIR / "travel_time.json"
DATASETS = {
    "isere": "OSRM 2021, all ordered pairs between the 512 Isère communes (isere_osrm_2021_matrix.csv.gz)",
    "towns": "openrouteservice 2025, 8,028 ordered pairs between 102 AURA towns (cities10k_ors_2025_aura.csv)",
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=calib.DEFAULT_DATA,
                        help="folder of the reference travel times (default: %(default)s)")
    parser.add_argument("--no-cv", action="store_true", help="skip the held-out refits (about 2 minutes)")
    parser.add_argument("--output", type=pathlib.Path, default=RESULTS, help="JSON results (default: %(default)s)")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    if not (data / calib.ISERE).is_file() or not (data / calib.TOWNS).is_file():
        print(f"skipped: reference travel times not found in {data} (give --data DIR)")
        return 0

    region = load_aura()
    started = time.perf_counter()
    travel = estimate_travel_times(region)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    dense = travel.dense()
    dense_s = time.perf_counter() - started
    cost = {
        "units": travel.n,
        "build_estimate_s": round(build_s, 2),
        "dense_matrix_s": round(dense_s, 2),
        "dense_matrix_mb": round(dense.nbytes / 1e6, 1),
        "dense_dtype": str(dense.dtype),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
    }

    pairs = calib.load_pairs(data, travel.keys)
    features = travel.features
    line = calib.fit_straight_line(features, pairs)
    own_line = np.zeros(len(pairs))
    for label in DATASETS:
        m = pairs.dataset == label
        own_line[m] = calib.predict_straight_line(features, calib.fit_straight_line(features, pairs.subset(m)),
                                                  pairs.subset(m))
    estimates = {
        "straight_line (in-sample)": calib.predict_straight_line(features, line, pairs),
        "line per data set (in-s.)": own_line,
        "shipped model (in-sample)": dense[pairs.origin, pairs.destination].astype(np.float64),
    }
    cv_s = None
    if not args.no_cv:
        started = time.perf_counter()
        estimates["straight_line (held-out)"] = calib.cross_validate(
            features, pairs, fitter=calib.fit_straight_line, predictor=calib.predict_straight_line)
        estimates["model (held-out)"] = calib.cross_validate(features, pairs)
        cv_s = round(time.perf_counter() - started, 1)

    results = {}
    header = f"{'estimate':28s} {'data':6s} {'pairs':>8s} {'median APE %':>13s} {'P90 APE %':>10s} {'bias %':>8s}"
    print(header)
    print("-" * len(header))
    for name, est in estimates.items():
        results[name] = {}
        for label in DATASETS:
            m = pairs.dataset == label
            e = calib.errors(est[m], pairs.minutes[m])
            results[name][label] = e
            print(f"{name:28s} {label:6s} {e['n_pairs']:8d} {e['median_ape_pct']:13.2f} "
                  f"{e['p90_ape_pct']:10.2f} {e['mean_bias_pct']:8.2f}")
    lyon = travel.keys.get_loc("69123")
    from_lyon = pairs.origin == lyon
    lyon_errors = calib.errors(dense[lyon, pairs.destination[from_lyon]].astype(np.float64),
                               pairs.minutes[from_lyon])
    grenoble = travel.keys.get_loc("38185")
    print(f"\nshipped model, reference pairs from Lyon 69123: {lyon_errors}; Lyon -> Grenoble "
          f"{dense[lyon, grenoble]:.1f} min")
    print(f"estimate for {cost['units']} units: built in {cost['build_estimate_s']} s; dense matrix "
          f"in {cost['dense_matrix_s']} s, {cost['dense_matrix_mb']} MB ({cost['dense_dtype']}); "
          f"peak memory {cost['peak_rss_mb']:.0f} MB")
    if cv_s is not None:
        print(f"held-out refits: {cv_s} s")

    payload = {
        "command": command_line(__file__, argv),
        "timestamp": timestamp(),
        "data": {label: text for label, text in DATASETS.items()},
        "fit_and_validation": {
            "straight_line (in-sample)": "fitted and scored on all pairs of both data sets (equal weight per data set)",
            "line per data set (in-s.)": "one straight line per data set, fitted and scored on that data set",
            "shipped model (in-sample)": "TravelTimeModel defaults, fitted by calibrate_travel_time.py on all pairs "
                                         "of both data sets, scored on the same pairs",
            "straight_line (held-out)": "4 folds of communes (CRC-32 of the code): fitted on pairs with neither end "
                                        "in the fold, scored on pairs leaving the fold",
            "model (held-out)": "same model form refitted per fold as above; scored on pairs leaving the fold",
            "paris": "not scored: Paris is outside AURA and the estimate routes only inside the region",
        },
        "straight_line": {"intercept_min": round(line.intercept, 3), "min_per_km": round(line.slope, 4)},
        "target": {"median_ape_pct_below": 8.0, "p90_ape_pct_below": 25.0},
        "results": results,
        "shipped_model_from_lyon_69123": lyon_errors,
        "lyon_to_grenoble_min": round(float(dense[lyon, grenoble]), 1),
        "cost": cost,
        "held_out_refits_s": cv_s,
    }
    atomic_write_json(args.output, payload)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
