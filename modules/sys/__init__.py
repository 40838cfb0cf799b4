"""Built-in functions every deployment has (PROTOCOL.md, "Built-in functions")."""

from gameserver.dispatch.registry import handler
from modules.sys.handlers import echo, now

HANDLERS = {
    "echo": handler(echo, login=False, any_args=True),
    "time": handler(now, login=False),
}
