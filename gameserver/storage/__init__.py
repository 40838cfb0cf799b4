"""Backends behind small interfaces: ``sql`` (SQLite or MariaDB/MySQL) and ``kv`` (Redis or in-process)."""
