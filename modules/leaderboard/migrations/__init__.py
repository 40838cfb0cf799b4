"""The leaderboard module's schema revisions (Alembic branch ``leaderboard``)."""
