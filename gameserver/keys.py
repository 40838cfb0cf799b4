"""Every Redis key and channel name, on one screen. All keys carry the configured prefix (``redis.prefix``)
so that several instances (seed 000's per-developer servers) can share one Redis without seeing each other.
"""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def node(self, node_id: str) -> str:
        """Hash of a live process (roles, addresses, load) that expires unless refreshed: seed 002's backend registry
        (gameserver/features/nodes/)."""
        return f"{self.prefix}nodes.{node_id}"

    def nodes(self) -> str:
        """Sorted set of the node ids, scored by when each one's hash expires (ms, Redis clock); readers skip the
        expired."""
        return f"{self.prefix}nodes"

    def nonce(self, nonce: str) -> str:
        """A single-use chat login nonce -> the identity JSON it carries (seed 003: Auth, Edge)."""
        return f"{self.prefix}nonce.{nonce}"

    def chat_public(self, world: object) -> str:
        """Chat channel of everyone logged into ``world`` (PROTOCOL.md, "Chat edge"; seed 003: chat.$WORLD.public)."""
        return f"{self.prefix}chat.{world}.public"

    def chat_family(self, world: object, family: object) -> str:
        """Chat channel of one family of ``world`` (seed 003: chat.$WORLD.family.$FN)."""
        return f"{self.prefix}chat.{world}.family.{family}"

    def chat_channels(self) -> str:
        """The start of every chat channel's name (public, family, control), e.g. to count what the chat loses."""
        return f"{self.prefix}chat."

    def chat_user(self, uid: int) -> str:
        """Control channel of one player's chat connections on every edge process (family moves): docs/chat.md."""
        return f"{self.prefix}chat.user.{uid}"

    def push_user(self, uid: int) -> str:
        """Server pushes to one player's gate connections, heard by every process where they are bound
        (gameserver/bus/redispubsub.py)."""
        return f"{self.prefix}push.{uid}"

    def login_failures_user(self, username: str) -> str:
        """Failed logins for one (canonical) username in the current window; expires with the window."""
        return f"{self.prefix}auth.fail.user.{username}"

    def login_failures_addr(self, address: str) -> str:
        """Failed logins from one client address (host, no port) in the current window."""
        return f"{self.prefix}auth.fail.addr.{address}"

    def registrations_addr(self, address: str) -> str:
        """Registrations from one client address (host) in the current ``auth.register_window``."""
        return f"{self.prefix}auth.register.addr.{address}"

    def revocations(self) -> str:
        """Channel: a player's tokens were revoked (``{"uid", "before"}``), heard by every process
        (gameserver/features/identity/revocations.py)."""
        return f"{self.prefix}auth.revoked"

    def mail_sent(self, uid: int) -> str:
        """Player mails ``uid`` sent in the current ``mail.send_window``; expires with the window."""
        return f"{self.prefix}mail.sent.{uid}"

    def leaderboard_top(self, board: str) -> str:
        """A board's top list as JSON, cached for ``leaderboard.cache_ttl`` (modules/leaderboard)."""
        return f"{self.prefix}leaderboard.top.{board}"

    def jobs_stream(self) -> str:
        """Stream of the background jobs ready to run, read by the workers' consumer group
        (gameserver/features/jobs/)."""
        return f"{self.prefix}jobs.ready"

    def jobs_delayed(self) -> str:
        """Sorted set of jobs not due yet (``delay``, ``at``, retries), scored by due time in ms; moved to the
        stream when due."""
        return f"{self.prefix}jobs.delayed"

    def jobs_dead(self) -> str:
        """Stream of jobs that failed their last try, each with its error (the dead letters)."""
        return f"{self.prefix}jobs.dead"

    def jobs_key(self, name: str, key: str) -> str:
        """Taken for ``jobs.key_ttl`` by ``jobs.enqueue(name, ..., key=key)``: the same key is enqueued once."""
        return f"{self.prefix}jobs.key.{name}.{key}"

    # Sessions and social (issue 16; docs/PROTOCOL.md, "Extensions") ------------------------------------------

    def mute(self, uid: int) -> str:
        """JSON of ``uid``'s chat mute (``until``, ``reason``, ``by``); expires with the mute (none if permanent)."""
        return f"{self.prefix}mod.mute.{uid}"

    def ban(self, uid: int) -> str:
        """JSON of ``uid``'s ban from logging in; expires with the ban (none if permanent)."""
        return f"{self.prefix}mod.ban.{uid}"

    def reports(self) -> str:
        """Hash of player reports by id, each JSON (reporter, uid, line, text, status, ...)."""
        return f"{self.prefix}mod.reports"

    def reports_open(self) -> str:
        """Sorted set of the open reports' ids, scored by when they were filed (ms)."""
        return f"{self.prefix}mod.reports.open"

    def report_ids(self) -> str:
        """Counter giving each report its id."""
        return f"{self.prefix}mod.reports.next"

    def reports_sent(self, uid: int) -> str:
        """Reports ``uid`` filed in the current ``moderation.report_window``; expires with the window."""
        return f"{self.prefix}mod.reports.by.{uid}"

    def moderation_log(self) -> str:
        """Capped stream of every moderation action with who did it."""
        return f"{self.prefix}mod.log"

    def moderation_changes(self) -> str:
        """Channel: a player's mute changed (``{"uid", "mute"}``), heard by every chat process."""
        return f"{self.prefix}mod.changed"

    def presence(self, uid: int) -> str:
        """Sorted set of the processes holding ``uid``'s gate connections, scored by when each entry expires (ms):
        refreshed by the holder, so a killed holder's entry lapses (gameserver/features/online.py)."""
        return f"{self.prefix}presence.{uid}"

    def presence_index(self) -> str:
        """Sorted set of every claim ``"<uid> <origin>"`` scored as in :meth:`presence`: the lapsed ones are swept."""
        return f"{self.prefix}presence.index"

    def last_seen(self, uid: int) -> str:
        """When ``uid`` was last online anywhere (ms)."""
        return f"{self.prefix}presence.seen.{uid}"

    def presence_watchers(self, uid: int) -> str:
        """Set of the uids that get ``presence.changed`` pushes about ``uid``."""
        return f"{self.prefix}presence.watchers.{uid}"

    def chat_history(self, channel: str) -> str:
        """Capped stream of the last lines of one chat channel (``channel`` is its full name, prefix included)."""
        return f"{channel}.history"

    def notifications(self, uid: int) -> str:
        """List of the pushes kept for ``uid`` while offline everywhere, oldest first."""
        return f"{self.prefix}notify.{uid}"

    def session_control(self) -> str:
        """Channel: a player's other gate connections are to close (``auth.single_session``)."""
        return f"{self.prefix}session.replace"

    def session_resume(self, holder: str) -> str:
        """Channel of one gate process's resumable sessions: another process takes one over (``session.resume``),
        and what is forwarded to one it took (gameserver/features/resume/handover.py)."""
        return f"{self.prefix}session.resume.{holder}"

    def admin_session(self, digest: str) -> str:
        """An operations-console login (its admin id and CSRF token), under the SHA-256 of the cookie's value;
        expires after ``admin.session_ttl`` (gameserver/features/admin/)."""
        return f"{self.prefix}admin.session.{digest}"

    def admin_failures_name(self, name: str) -> str:
        """Failed operations-console logins for one admin name in the current ``admin.failure_window``."""
        return f"{self.prefix}admin.fail.name.{name}"

    def admin_failures_addr(self, address: str) -> str:
        """Failed operations-console logins from one client address in the current window."""
        return f"{self.prefix}admin.fail.addr.{address}"

    def admin_kick(self) -> str:
        """Channel: an operator kicked a player (``{"uid"}``): every process closes their gate connections."""
        return f"{self.prefix}admin.kick"

    def logs(self) -> str:
        """Stream of every process's log records (capped at ``admin.log_stream_max``), read by the console's log
        page (gameserver/logship.py)."""
        return f"{self.prefix}logs"

    def metrics_samples(self, node: str) -> str:
        """List of one node's metrics samples (JSON, newest first) over ``admin.metrics_window``."""
        return f"{self.prefix}metrics.{node}"

    def metrics_nodes(self) -> str:
        """Sorted set of the nodes with metrics samples, scored by their latest sample's time (ms)."""
        return f"{self.prefix}metrics"

    def requests(self) -> str:
        """Stream of the requests gates hand to remote workers, read by the consumer group ``workers``
        (``server.bus = "redis"``: gameserver/bus/streams.py)."""
        return f"{self.prefix}requests"

    def gate(self, gid: str) -> str:
        """A live gate's node id, with a TTL its heartbeat renews (seed 003: gates.id.$GID)."""
        return f"{self.prefix}gates.id.{gid}"

    def message(self, mid: str) -> str:
        """Message id -> the gate id its answer goes to, for ``remote.mid_ttl`` seconds (seed 003: 10 s)."""
        return f"{self.prefix}msg.{mid}"

    def gate_answers(self, gid: str) -> str:
        """Channel of the answers (replies, session changes, pushes) workers send to one gate."""
        return f"{self.prefix}gate.{gid}"
