"""The bottom layer: the typed Istio resources (``istio.py``), the syntax rules Istio's
validation applies to names, labels and regexes (``syntax.py``) and the names shared by
every layer (``names.py``).  Imports nothing from the rest of ``simulator``."""
