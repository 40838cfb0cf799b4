using System;

namespace GameServer.Client
{
    /// <summary>Reconnect delays: exponential from <see cref="Min"/> to <see cref="Max"/>, each one drawn
    /// at random from its upper half ("equal jitter"), so that clients dropped together do not come back
    /// together.</summary>
    public sealed class Backoff
    {
        public TimeSpan Min = TimeSpan.FromMilliseconds(250);
        public TimeSpan Max = TimeSpan.FromSeconds(30);
        /// <summary>Attempts before giving up; 0 = never give up.</summary>
        public int MaxAttempts;

        readonly Random random = new Random();

        /// <summary>The delay before attempt <paramref name="attempt"/> (1-based).</summary>
        public TimeSpan Delay(int attempt)
        {
            var ceiling = Math.Min(Max.TotalMilliseconds, Min.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30)));
            double r;
            lock (random) r = random.NextDouble();
            return TimeSpan.FromMilliseconds(ceiling / 2 + r * ceiling / 2);
        }
    }
}
