"""LabelingCollector: the queue's counters summed over partitions and rolled up to every variant."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tilewatch.aggregators.arrays import grow
from tilewatch.aggregators.cells.settings import CellSettings
from tilewatch.aggregators.labeling.queue import LabelingQueue
from tilewatch.aggregators.labeling.settings import REASONS, LabelingSettings
from tilewatch.aggregators.state.replica import ReplicaState
from tilewatch.exporters.prometheus.labeling_collector import LabelingCollector


def test_selected_counts_roll_up_over_cells_and_partitions() -> None:
    state = ReplicaState(CellSettings(dimensions=("segment", "region"), window_seconds=60))
    settings = LabelingSettings(threshold=0.5)
    counts = {("m", "a", "eu"): 3, ("m", "a", "us"): 2, ("m", "b", "eu"): 5}
    for p, (key, n) in enumerate(counts.items()):
        part = state.assign(("t", p % 2))
        if part.labeling is None:
            part.labeling = LabelingQueue(settings, 60.0, 0.0)
        leaf = int(state.registry.index_many([key])[0])
        q = part.labeling
        q.selected = grow(q.selected, leaf + 1)
        q.selected[leaf, REASONS.index("least_confident")] += n
        q.selected[leaf, REASONS.index("confident_wrong")] += 1
        q.no_threshold += 7
    registry = CollectorRegistry()
    registry.register(LabelingCollector(state, ("segment", "region"), lambda: 4))

    def value(model: str, segment: str, region: str, reason: str) -> float | None:
        return registry.get_sample_value(
            "tilewatch_labeling_selected_total",
            {"model": model, "segment": segment, "region": region, "reason": reason},
        )

    assert value("m", "a", "eu", "least_confident") == 3
    assert value("m", "a", "__all__", "least_confident") == 5
    assert value("m", "__all__", "eu", "least_confident") == 8
    assert value("m", "__all__", "__all__", "least_confident") == 10
    assert value("m", "__all__", "__all__", "confident_wrong") == 3
    assert value("m", "b", "us", "least_confident") is None
    assert registry.get_sample_value("tilewatch_labeling_failures_total") == 4
    assert registry.get_sample_value("tilewatch_labeling_no_threshold_total") == 21
