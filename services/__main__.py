"""``python -m services`` runs the sharehub command line (used to start background processes)."""

from services.cli import main

main()
