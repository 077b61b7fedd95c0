"""Route testing without a cluster: validate, explain, check (driven by the pure core)."""
