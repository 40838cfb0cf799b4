"""Presence (docs/PROTOCOL.md, "Presence", an extension): who is online on any process, and since when not.

``presence.get`` answers for a list of uids; ``presence.subscribe`` makes the caller get ``presence.changed``
``{"uid", "online", "last_seen"}`` pushes when one of them comes or goes (``presence.unsubscribe`` stops them).
"""

from modules.presence.handlers import get, subscribe, unsubscribe

HANDLERS = {
    "get": get,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
}
