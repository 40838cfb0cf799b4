// Callbacks (pushes, chat messages, connection state) are raised on the I/O threads of the WebSockets; the
// dispatcher hands them to the game's own thread: Unity's and Godot's main threads have a
// SynchronizationContext, which gets them by Post; elsewhere they wait in a queue for Update().
using System;
using System.Collections.Concurrent;
using System.Threading;

namespace GameServer.Client
{
    public enum CallbackMode
    {
        /// <summary>On the SynchronizationContext of the thread that made the client (Unity's or Godot's main
        /// thread), or, where there is none, queued for <see cref="Dispatcher.Update"/>.</summary>
        CallerContext,
        /// <summary>Always queued for <see cref="Dispatcher.Update"/>, e.g. from a game loop's frame tick.</summary>
        Manual,
        /// <summary>At once, on the I/O thread (bots, servers, tests that lock for themselves).</summary>
        Immediate,
    }

    /// <summary>Delivers callbacks on the caller's context, or queues them for <see cref="Update"/>.</summary>
    public sealed class Dispatcher
    {
        readonly SynchronizationContext context;
        readonly bool immediate;
        readonly ConcurrentQueue<Action> queue = new ConcurrentQueue<Action>();

        /// <summary>Captures <see cref="SynchronizationContext.Current"/> when <paramref name="mode"/> is
        /// CallerContext: create the client on the thread that should get its callbacks.</summary>
        public Dispatcher(CallbackMode mode)
        {
            immediate = mode == CallbackMode.Immediate;
            context = mode == CallbackMode.CallerContext ? SynchronizationContext.Current : null;
        }

        /// <summary>True when callbacks wait for <see cref="Update"/> (no context captured, not immediate).</summary>
        public bool NeedsUpdate { get { return context == null && !immediate; } }

        public void Post(Action action)
        {
            if (immediate) action();
            else if (context != null) context.Post(state => ((Action)state)(), action);
            else queue.Enqueue(action);
        }

        /// <summary>Runs the queued callbacks on the calling thread; returns how many ran. Call it once per frame
        /// where there is no SynchronizationContext. An exception from a callback propagates to the caller
        /// (the rest stay queued for the next call).</summary>
        public int Update()
        {
            var ran = 0;
            Action action;
            while (queue.TryDequeue(out action))
            {
                ran++;
                action();
            }
            return ran;
        }
    }
}
