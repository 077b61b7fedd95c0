"""Names shared by every layer, defined once."""

from __future__ import annotations

from typing import Final

# The reserved gateway name for the sidecars of the mesh (VirtualService.gateways).
MESH: Final = "mesh"
# The namespace a resource without metadata.namespace lands in, and the default client namespace.
DEFAULT_NAMESPACE: Final = "default"
# The cluster's DNS domain: short names resolve to <name>.<namespace>.svc.<domain>.
DEFAULT_DOMAIN: Final = "cluster.local"
# The largest protobuf uint32: Istio's bound for uint32 fields, Envoy's "unset" circuit-breaker threshold.
UINT32_MAX: Final = 2**32 - 1
RANDOM_VALUE_MAX: Final = 2**64 - 1  # a request's random value is a uint64, as in Envoy
# gRPC status names (HTTPFaultInjection.Abort.grpcStatus) and their codes, in code order.
GRPC_STATUS_CODES: Final = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}
