"""Reports rendered from experiment result files (``results.json``): Markdown and HTML tables
and PNG figures (the product issue fills this room). Every table or figure is rendered from
files, never from numbers held in code.

Layer: report may import experiments and everything below; only the command line imports it.
"""

__all__: list = []
