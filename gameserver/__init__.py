"""gameserver: an asyncio game-server framework (gate, chat edge, auth, worker) in one process."""

__version__ = "0.1.0"
