"""The inventory module's schema revisions (Alembic branch ``inventory``)."""
