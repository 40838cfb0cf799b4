"""The caller's connection (PROTOCOL.md, "Built-in functions"): ``session.bind`` attaches it to a player so that
later requests need no ``token``. See docs/auth.md.
"""

from gameserver.dispatch.registry import handler
from modules.session.handlers import bind

HANDLERS = {
    "bind": handler(bind, login=False),
}
