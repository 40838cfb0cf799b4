"""Inventory: how many of each item (``enums.ItemKind``) a player owns.

Gate functions: ``inventory.get`` and ``inventory.discard``. Other modules add and take items inside their
own transactions with :func:`modules.inventory.items.add_items` / :func:`~modules.inventory.items.remove_items`.
"""

from gameserver.dispatch.registry import handler
from modules.inventory.handlers import discard, get

HANDLERS = {
    "get": get,
    "discard": handler(discard, idempotent=True),
}
