"""The pytest plugin's routing outcome: a ``RouteOutcome`` with assertion helpers
that take the expectations of the route-test format and fail listing every
mismatch, worded as ``mirrorsim check`` words them."""

from __future__ import annotations

from typing import Any

from simulator.routecheck.expectations import parse_expectations
from simulator.routecheck.outcome import RouteOutcome


class CheckedRoute(RouteOutcome):
    """What ``Mesh.route`` returns: a ``RouteOutcome`` that can assert on itself."""

    def check(self, **expect: Any) -> None:
        """Assert expectations written as in a route-test file
        (``decision.check(destination={"host": "reviews", "subset": "v2"}, mirrors=[])``);
        every mismatch is listed in the AssertionError."""
        checks, problems = parse_expectations(expect)
        if problems:
            raise ValueError("; ".join(p.message + (f" (at {p.path})" if p.path else "") for p in problems))
        failures = [f for c in checks for f in c.run(self)]
        if failures:
            lines = [f"route check failed: {self.summary()}"] + ["  " + f.format() for f in failures]
            raise AssertionError("\n".join(lines))

    def assert_destination(self, host: str | None = None, subset: str | None = None, port: int | None = None,
                           cluster: str | None = None) -> None:
        spec: dict[str, Any] = {k: v for k, v in
                                (("host", host), ("subset", subset), ("port", port), ("cluster", cluster))
                                if v is not None}
        self.check(destination=spec)

    def assert_mirrors(self, *mirrors: dict[str, Any]) -> None:
        """Exactly these mirrors (``{"host": ..., "subset": ..., "percentage": ..., "shadowHost": ...}``)."""
        self.check(mirrors=list(mirrors))

    def assert_no_mirror(self) -> None:
        self.check(mirrors=[])

    def assert_status(self, status: int) -> None:
        self.check(status=status)
