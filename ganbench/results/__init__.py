"""Results: what runs leave behind, and everything that reads it.

``rows`` (the typed result row), ``store`` (the append-only ``results.jsonl`` and run folders),
``tables`` (comparison tables; formats in ``formats``, significance tests in ``significance``),
``published`` (paper numbers beside ganbench's), ``report``, ``plots`` and ``check`` (the
regression gate). Nothing here trains or evaluates a model.
"""
