"""What a plan means for people: figures, maps, comparisons.

- :mod:`~sectorize.report.kpi`: caseload against target, travel times, contiguity; text and HTML;
- :mod:`~sectorize.report.charts`: charts for notebooks and the KPI page (no pyplot);
- :mod:`~sectorize.report.maps`: the offline Folium map;
- :mod:`~sectorize.report.compare`: several plans side by side, trade-off charts;
- :mod:`~sectorize.report.pareto`: the non-dominated plans of a set of variations;
- :mod:`~sectorize.report.pathology`: per-pathology caseload views;
- :mod:`~sectorize.report.simulation`: week-by-week referral simulation per worker;
- :mod:`~sectorize.report.transition`: month-by-month handover after a re-run;
- :mod:`~sectorize.report.privacy`: small-count suppression for every published figure.
"""
