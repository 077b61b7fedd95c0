"""Names shared by every layer, defined once."""

from __future__ import annotations

from typing import Final

# The reserved gateway name for the sidecars of the mesh (VirtualService.gateways).
MESH: Final = "mesh"
# The namespace a resource without metadata.namespace lands in, and the default client namespace.
DEFAULT_NAMESPACE: Final = "default"
# The cluster's DNS domain: short names resolve to <name>.<namespace>.svc.<domain>.
DEFAULT_DOMAIN: Final = "cluster.local"
