"""Reports rendered from experiment result files (``results.json``): Markdown tables and PNG
figures. Every table or figure is rendered from files, never from numbers held in code.

* :mod:`~featperm.report.feature_attacks` — ``results.md``, ``attributes.png``,
  ``key_recovery.png`` and ``reconstructions.png`` of a ``featperm attack-features`` run.
* :mod:`~featperm.report.model_protection` — ``results.md`` (Tables I-III) of a ``featperm protect`` run.
* :mod:`~featperm.report.demo` — ``report.md`` and the self-contained ``report.html`` of a
  ``featperm demo`` folder, from its stages' ``results.json``.

Layer: report may import experiments and everything below; only the command line imports it.
"""

__all__: list = []
