"""The message handler (seed 003): the function table, argument binding, injection, deadlines, errors -> codes."""
