"""The caller's connection (PROTOCOL.md, "Built-in functions"): ``session.bind`` attaches it to a player so that
later requests need no ``token``. See docs/auth.md.
"""

from gameserver.dispatch.registry import handler
from modules.session.handlers import ack, bind, resume

HANDLERS = {
    "bind": handler(bind, login=False),
    # Answered by the gate process itself on the connections they are meant for (docs/PROTOCOL.md, "Resume").
    "resume": handler(resume, login=False),
    "ack": handler(ack, login=False),
}
