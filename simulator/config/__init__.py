"""Loading Istio networking YAML into the typed model, with diagnostics.

from simulator.config import load, load_text, LoadResult
result = load(["istio.yaml", "more/"])     # files or directories
result.config, result.diagnostics, result.ok
"""

from simulator.config.loader import LoadResult, load, load_text

__all__ = ["LoadResult", "load", "load_text"]
