"""The replica's own families: records read and rejected, dead letters, checkpoints, Kafka.

Read from the snapshot's :class:`~tilewatch.aggregators.state.replica.Snapshot` ``ingest``
counters (written by the consumer loop); nothing here changes state.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from tilewatch.aggregators.state.snapshot import Snapshot
from tilewatch.exporters.prometheus.families import family, table_family

__all__ = ["ingest_families", "invalid_value_families"]


def ingest_families(snap: Snapshot) -> Iterator[Metric]:
    """Records read, rejected and dead-lettered; checkpoints; consumer lag and connection."""
    ing = snap.ingest
    yield table_family("tilewatch_invalid_events_total", ing.invalid)
    yield table_family("tilewatch_dead_letter_failures_total", ing.dead_letter_failures)
    yield family("tilewatch_read_events_total", value=ing.read)
    yield family("tilewatch_dead_letter_events_total", value=ing.dead_lettered)
    yield table_family("tilewatch_checkpoint_restores_total", ing.checkpoint_restores)
    yield table_family("tilewatch_checkpoint_errors_total", ing.checkpoint_errors)
    yield family("tilewatch_checkpoints_total", value=ing.checkpoints_written)
    yield family("tilewatch_checkpoint_last_bytes", value=ing.checkpoint_last_bytes)
    yield family("tilewatch_checkpoint_last_timestamp_seconds", value=ing.checkpoint_last_time)
    yield table_family("tilewatch_consumer_lag_events", ing.lag)
    yield family("tilewatch_kafka_up", value=ing.kafka_up)
    yield family("tilewatch_partitions_assigned", value=len(snap.partitions))


def invalid_value_families(snap: Snapshot) -> Iterator[Metric]:
    """Valid events with an unusable optional field, by field (labels of the join included)."""
    table = dict(snap.ingest.invalid_values)
    if snap.performance is not None:
        for n in snap.performance.invalid.values():
            table["label"] = table.get("label", 0) + n
    yield table_family("tilewatch_invalid_values_total", table)
    classes = dict(snap.ingest.class_scores)
    pooled = classes.pop("pooled", 0)
    yield table_family("tilewatch_malformed_class_scores_total", classes)
    yield family("tilewatch_pooled_class_events_total", value=pooled)
