"""The HTTP API of the hub: consumers' records, governance, operations; one FastAPI app per process.

:func:`services.api.app.create_app` is the composition root: it builds the :class:`~services.api.context.
ApiContext` the routes use and includes one router per concern (:mod:`.records`, :mod:`.governance`,
:mod:`.operations`). Authentication (:mod:`.auth`) and errors (:mod:`.errors`) are shared by all.
"""
