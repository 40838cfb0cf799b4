"""The family module's schema revisions (Alembic branch ``family``)."""
