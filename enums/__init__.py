"""Enums shared with game clients.

Integer enums double as SQL keys (seed 003: comparing ints is cheaper than strings); string enums are
wire values. Clients get the same definitions from ``gameserver enums export`` once that exists.
"""

from enums.errors import ErrorCode

__all__ = ["ErrorCode"]
