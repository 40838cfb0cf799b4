"""Features: what a process runs besides the gate (identity, chat, mailbox, jobs, nodes, console, ...)."""
