"""Vector signals per cell and predicted class: embedding drift (a PCA fitted on the baseline,
per-component PSI and the Mahalanobis distance of the window mean) and aggregated explanations
(mean absolute attribution per feature, its share drift and rank change).

May import: the basic modules (``tilewatch.aggregators.errors``, ``arrays``, ``codec``),
``tilewatch.aggregators.stats``, ``tilewatch.aggregators.cells`` and
``tilewatch.aggregators.drift``.
"""

# The modules are the public API of this subpackage: import from them directly.
__all__: list[str] = []
