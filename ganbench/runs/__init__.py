"""Running: ``one`` (train and evaluate one run, or evaluate samples made elsewhere), ``suite``
(validate a suite, then run it), ``pool`` (``--jobs N`` processes), ``ray`` (``--executor ray``),
``torchrun`` (data-parallel runs) and ``tensorboard`` (optional logging)."""
