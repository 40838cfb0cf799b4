"""Subcommands of `gameserver` that are tools rather than the server: the terminal client, instances, enums."""
