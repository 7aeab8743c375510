"""The web console: server-rendered pages for the agencies of the hub, in Vietnamese and English, mounted on
the HTTP API (``/console``). See docs/console.md."""
