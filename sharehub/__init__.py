"""sharehub's shared kernel: settings, errors, Avro codec, the envelope, keys and the governance view.

Everything else (connectors, projections, services) imports from here; nothing here imports from them.
"""

__version__ = "0.1.0"
