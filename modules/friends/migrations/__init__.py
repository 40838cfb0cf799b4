"""The friends module's schema revisions (Alembic branch ``friends``)."""
