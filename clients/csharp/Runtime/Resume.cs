// Resume bookkeeping (the resume protocol: docs/PROTOCOL.md, "Resume"): the session's resume token, the highest
// seq received, and when to send session.ack. Pure: the caller passes the clock, holds the lock and does the I/O.
using System;
using System.Collections.Generic;

namespace GameServer.Client
{
    /// <summary>A reply's <c>data.resume</c>: the server keeps the session for <see cref="Grace"/> after a drop.</summary>
    public sealed class ResumeGrant
    {
        /// <summary>Sent back in <c>session.resume</c>; a resume may hand out a new one (the latest counts).</summary>
        public string Token { get; private set; }
        /// <summary>Seconds the server keeps the session after the connection drops.</summary>
        public double Grace { get; private set; }
        /// <summary>Messages the server keeps unacknowledged for the session.</summary>
        public long Buffer { get; private set; }

        public ResumeGrant(string token, double grace, long buffer)
        {
            Token = token;
            Grace = grace;
            Buffer = buffer;
        }

        /// <summary>The grant in a login, register, bind or resume reply's data, or null when it has none.</summary>
        public static ResumeGrant FromReply(object data)
        {
            var map = data as IDictionary<string, object>;
            object value;
            if (map == null || !map.TryGetValue("resume", out value)) return null;
            var resume = value as IDictionary<string, object>;
            object token, grace, buffer;
            if (resume == null || !resume.TryGetValue("token", out token) || !(token is string) ||
                !resume.TryGetValue("grace", out grace) || !resume.TryGetValue("buffer", out buffer))
                return null;
            try
            {
                return new ResumeGrant((string)token, Wire.Float(grace), Wire.Int(buffer));
            }
            catch (GameServerException)
            {
                return null;
            }
        }
    }

    /// <summary>The seq/ack state of a resumable session (not thread-safe: the client locks around it).</summary>
    public sealed class ResumeState
    {
        /// <summary>The functions that bind a connection to a player and so take <c>"resume": true</c>.</summary>
        internal static readonly HashSet<string> Functions = new HashSet<string> { "auth.login", "auth.register", "session.bind" };
        /// <summary>At most one <c>session.ack</c> per this many ms.</summary>
        public const long AckInterval = 1000;

        long acked;
        long ackedAt = long.MinValue / 2;

        /// <summary>The session's grant, or null when the session is not resumable.</summary>
        public ResumeGrant Grant { get; private set; }
        /// <summary>The highest seq received in this session (0: none yet).</summary>
        public long Received { get; private set; }

        /// <summary>A login, register or bind made the session resumable: a new session, numbered from
        /// <paramref name="seq"/> (the reply's own; null when it carries none).</summary>
        public void Start(ResumeGrant grant, long? seq)
        {
            Grant = grant;
            Received = seq ?? 0;
            acked = Received;
            ackedAt = long.MinValue / 2;
        }

        /// <summary>A resume succeeded: the same session (the numbering goes on), maybe with a new token.</summary>
        public void Renew(ResumeGrant grant) { Grant = grant; }

        /// <summary>The session is gone (logged out, a failed resume, a login without resume).</summary>
        public void Forget()
        {
            Grant = null;
            Received = 0;
            acked = 0;
        }

        /// <summary>A message arrived with <paramref name="seq"/> (or none): whether to deliver it. One whose seq
        /// was received already is a duplicate; one without a seq predates the numbering and is delivered.</summary>
        public bool Accept(long? seq)
        {
            if (!seq.HasValue) return true;
            if (seq.Value <= Received) return false;
            Received = seq.Value;
            return true;
        }

        /// <summary>When to send <c>session.ack</c>, in ms from <paramref name="now"/>: null when none is due (not
        /// resumable, or Received grew by less than a quarter of the buffer since the last ack), 0 at once, more
        /// when the last ack was under <see cref="AckInterval"/> ago.</summary>
        public long? AckDelay(long now)
        {
            if (Grant == null || Received - acked < Math.Max(1, Grant.Buffer / 4)) return null;
            return Math.Max(0, ackedAt + AckInterval - now);
        }

        /// <summary><c>session.ack</c> goes out now: the <c>received</c> to send.</summary>
        public long Ack(long now)
        {
            acked = Received;
            ackedAt = now;
            return Received;
        }

        /// <summary>The reason word of a <c>resume_failed</c> message: <c>expired</c>, <c>overflow</c>,
        /// <c>replaced</c>, <c>closed</c>, <c>lost</c>, <c>invalid</c>, <c>banned</c>, <c>revoked</c>.</summary>
        public static string FailureReason(string message)
        {
            var colon = (message ?? "").IndexOf(':');
            return (colon < 0 ? message ?? "" : message.Substring(0, colon)).Trim();
        }
    }
}
