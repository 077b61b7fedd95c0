"""The live page at the admin root: a picture of the loaded config and the traffic as it
happens (docs/teaching.md).  ``graph`` draws the picture from the core's RouteTable,
``hub`` is the data plane's event sink while a page is open (simulator/proxy/events.py),
``app`` serves the page, its static assets (no network needed) and the event stream."""
