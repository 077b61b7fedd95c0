"""pytest plugin (entry point ``pytest11``): fixtures for unit-testing routing configs.

Being filled in by the route-testing work (docs/route-testing.md)."""
