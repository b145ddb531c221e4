"""Settings of the metrics endpoint (the ``[exporter]`` section)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExporterSettings"]


@dataclass(frozen=True, slots=True)
class ExporterSettings:
    """Address the Prometheus endpoint listens on; port 0 picks a free port."""

    host: str = "0.0.0.0"
    port: int = 9464
