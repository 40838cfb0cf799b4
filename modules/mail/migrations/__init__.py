"""The mail module's schema revisions (Alembic branch ``mail``)."""
