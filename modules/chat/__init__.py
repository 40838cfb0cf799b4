"""The chat edge's gate functions (docs/PROTOCOL.md, "Chat history" and "Moderation", extensions).

``chat.history`` returns the last lines of the caller's world or family channel (as the chat edge's ``HISTORY``
command); ``chat.report`` files a report of one line, by its message id, for the moderators.
"""

from modules.chat.handlers import history, report

HANDLERS = {
    "history": history,
    "report": report,
}
