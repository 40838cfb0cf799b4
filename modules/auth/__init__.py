"""Accounts through the gate (PROTOCOL.md, "Built-in functions"): the same as the ``/auth/*`` HTTP routes.

``auth.register`` and ``auth.login`` also bind the connection to the player, so that later requests on it
need no ``token`` (as after ``session.bind``). They run in processes with the ``auth`` role. See docs/auth.md.
"""

from gameserver.dispatch.registry import handler
from modules.auth.handlers import login, logout, nonce, refresh, register

HANDLERS = {
    "register": handler(register, login=False),
    "login": handler(login, login=False),
    "nonce": nonce,
    "refresh": refresh,
    "logout": logout,
}
