"""Alembic's script folder for the core tables (``env.py``, the revision template); the core's revisions are in
``versions/``, each module's in its own ``migrations/`` folder. :mod:`gameserver.storage.migrate` runs them."""
