"""``python -m services`` runs the sharehub command line (used to start background processes).

Guarded: a worker process the command line starts (``spawn``, e.g. ``audit verify --workers``) imports this
module again, and must not run the command line a second time."""

from services.cli import main

if __name__ == "__main__":
    main()
