"""The tile page: a small page at ``/`` of the metrics server, and the JSON API it reads.

- ``source``: :class:`TileSource`, one snapshot with its health and page statistics per second,
  and :func:`history_columns`, what the replica's window history records;
- ``query``: the API's query parameters, checked (``400`` with a reason on a bad one);
- ``tiles``: a cell's tile (value, n, bounds, status, flags, why grey) and the normalisations;
- ``api``: the endpoints (``/api/meta``, ``cells``, ``grid``, ``cell``, ``timeline``,
  ``health``), documented in ``docs/page.md``;
- ``server``: :class:`TilePage`, the WSGI app (page, assets in ``static/``, API, CSP).

May import: ``tilewatch.aggregators``, ``tilewatch.exporters.grafana.dashboard_statistics``
(the statistics and their colour scales, shared with the dashboards),
``tilewatch.exporters.generator_inputs``; not ``prometheus_client``, ``tilewatch.streams`` or
the CLI and config modules.
"""

from __future__ import annotations

from tilewatch.exporters.web.api import Api
from tilewatch.exporters.web.query import QueryError
from tilewatch.exporters.web.server import CSP, TilePage
from tilewatch.exporters.web.source import TileFrame, TileSource, history_columns

__all__ = ["CSP", "Api", "QueryError", "TileFrame", "TilePage", "TileSource", "history_columns"]
