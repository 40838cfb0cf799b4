"""The core's revisions (branch ``gameserver``): the ``accounts`` table and the ``idempotency`` table."""
