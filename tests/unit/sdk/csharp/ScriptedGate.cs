// The C# client's resume (docs/PROTOCOL.md, "Resume") against a scripted gate: a WebSocket server on a loopback
// port whose replies the checks write by hand (the black-box scenario runs the same against a real server). Part of
// Units.exe (tests/unit/sdk/test_csharp_mono.py).
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using GameServer.Client;

/// <summary>One request the client sent, and the connection to answer it on.</summary>
sealed class Request
{
    public GateConnection Connection;
    public long Id;
    public string Fn;
    public IDictionary<string, object> Args;

    public void Reply(object data, long? seq = null)
    {
        var message = new Dictionary<string, object> { { "id", Id }, { "ok", true }, { "data", data } };
        if (seq.HasValue) message["seq"] = seq.Value;
        Connection.Send(message);
    }

    public void Fail(string code, string text)
    {
        Connection.Send(new Dictionary<string, object>
        {
            { "id", Id }, { "ok", false }, { "error", new Dictionary<string, object> { { "code", code }, { "message", text } } },
        });
    }
}

/// <summary>The server side of one WebSocket connection: JSON text frames in and out.</summary>
sealed class GateConnection
{
    const string Magic = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455, 1.3
    readonly TcpClient client;
    readonly NetworkStream stream;
    readonly object writing = new object();

    public GateConnection(TcpClient client)
    {
        this.client = client;
        stream = client.GetStream();
    }

    public void Serve(BlockingCollection<Request> requests)
    {
        try
        {
            var head = new StringBuilder();
            while (!head.ToString().EndsWith("\r\n\r\n")) head.Append((char)ReadByte());
            var key = "";
            foreach (var line in head.ToString().Split(new[] { "\r\n" }, StringSplitOptions.None))
                if (line.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase)) key = line.Substring(18).Trim();
            string accept;
            using (var sha1 = SHA1.Create()) accept = Convert.ToBase64String(sha1.ComputeHash(Encoding.ASCII.GetBytes(key + Magic)));
            Write(Encoding.ASCII.GetBytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                "Sec-WebSocket-Accept: " + accept + "\r\n\r\n"));
            while (true)
            {
                var first = ReadByte();
                var second = ReadByte();
                long length = second & 0x7f;
                if (length == 126) length = (ReadByte() << 8) | ReadByte();
                else if (length == 127) throw new IOException("no frame here is that long");
                var mask = new byte[4];
                for (var i = 0; i < 4; i++) mask[i] = (byte)ReadByte(); // client frames are masked
                var payload = new byte[length];
                for (var i = 0; i < length; i++) payload[i] = (byte)(ReadByte() ^ mask[i % 4]);
                if ((first & 0x0f) == 8) return; // close
                var map = (IDictionary<string, object>)Json.Parse(Encoding.UTF8.GetString(payload));
                requests.Add(new Request
                {
                    Connection = this, Id = (long)map["id"], Fn = (string)map["fn"], Args = (IDictionary<string, object>)map["args"],
                });
            }
        }
        catch (Exception) { } // dropped
        finally { client.Close(); }
    }

    public void Send(object message)
    {
        var payload = Encoding.UTF8.GetBytes(Json.Serialize(message));
        var frame = new MemoryStream();
        frame.WriteByte(0x81); // FIN, text
        if (payload.Length < 126) frame.WriteByte((byte)payload.Length);
        else
        {
            frame.WriteByte(126);
            frame.WriteByte((byte)(payload.Length >> 8));
            frame.WriteByte((byte)payload.Length);
        }
        frame.Write(payload, 0, payload.Length);
        Write(frame.ToArray());
    }

    /// <summary>Cut the connection, as a network would.</summary>
    public void Drop()
    {
        client.Client.LingerState = new LingerOption(true, 0); // a reset, not a close handshake
        client.Close();
    }

    int ReadByte()
    {
        var b = stream.ReadByte();
        if (b < 0) throw new EndOfStreamException();
        return b;
    }

    void Write(byte[] bytes)
    {
        lock (writing) stream.Write(bytes, 0, bytes.Length);
    }
}

sealed class ScriptedGate : IDisposable
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(20); // a hang guard: nothing asserts on time
    readonly TcpListener listener = new TcpListener(IPAddress.Loopback, 0);
    readonly BlockingCollection<Request> requests = new BlockingCollection<Request>();
    public int Connections;

    public ScriptedGate()
    {
        listener.Start();
        new Thread(() =>
        {
            while (true)
            {
                TcpClient client;
                try { client = listener.AcceptTcpClient(); }
                catch (Exception) { return; } // stopped
                Interlocked.Increment(ref Connections);
                var connection = new GateConnection(client);
                new Thread(() => connection.Serve(requests)) { IsBackground = true }.Start();
            }
        }) { IsBackground = true }.Start();
    }

    public string Url { get { return "ws://127.0.0.1:" + ((IPEndPoint)listener.LocalEndpoint).Port + "/gate"; } }

    /// <summary>The next request the client sent, on whichever connection; it must call <paramref name="fn"/>.</summary>
    public Request Next(string fn)
    {
        Request request;
        if (!requests.TryTake(out request, Patience)) throw new Exception("no " + fn + " request came");
        if (request.Fn != fn) throw new Exception("expected " + fn + ", got " + request.Fn);
        return request;
    }

    public void Dispose() { listener.Stop(); }
}

static class ResumeChecks
{
    static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    static ClientOptions Options(ScriptedGate gate)
    {
        return new ClientOptions(gate.Url)
        {
            Encoding = WireEncoding.Json,
            Callbacks = CallbackMode.Immediate,
            Backoff = new Backoff { Min = TimeSpan.FromMilliseconds(1), Max = TimeSpan.FromMilliseconds(20) },
        };
    }

    static T Wait<T>(Task<T> task, string what)
    {
        if (!task.Wait(Patience)) throw new Exception("gave up waiting for " + what);
        return task.Result;
    }

    static Exception Failure(Task task, string what)
    {
        try
        {
            if (!task.Wait(Patience)) throw new Exception("gave up waiting for " + what);
        }
        catch (AggregateException e)
        {
            return e.GetBaseException();
        }
        throw new Exception(what + " did not fail");
    }

    static Dictionary<string, object> Map(params object[] pairs)
    {
        var map = new Dictionary<string, object>();
        for (var i = 0; i < pairs.Length; i += 2) map[(string)pairs[i]] = pairs[i + 1];
        return map;
    }

    static Dictionary<string, object> Grant(string token)
    {
        return Map("token", token, "grace", 30L, "buffer", 8L);
    }

    /// <summary>A resume that brings the reply of the call in flight and a push sent meanwhile, each once; then
    /// one the server refuses: the call in flight fails as lost and the client binds with its token.</summary>
    public static void ResumeAndRefusal(Action<bool, string> check)
    {
        using (var gate = new ScriptedGate())
        using (var auth = new AuthClient("http://127.0.0.1:9", CallbackMode.Immediate))
        {
            var client = new GameClient(Options(gate), auth);
            Wait(client.ConnectAsync().ContinueWith(t => { t.Wait(); return true; }), "connect");
            var login = client.CallAsync("auth.login", Map("username", "al", "password", "pw"));
            var asked = gate.Next("auth.login");
            check(asked.Args.ContainsKey("resume") && (bool)asked.Args["resume"], "a login asks for resume by default");
            asked.Reply(Map("uid", 7L, "token", "jwt", "resume", Grant("r1")), 1);
            Wait(login, "the login");
            check(client.Resumable && auth.Token == "jwt", "resumable after the login");

            var pushes = new List<object>();
            client.On("mail.new", data => { lock (pushes) pushes.Add(data); });
            var resumed = new TaskCompletionSource<long>();
            client.Resumed += replayed => resumed.TrySetResult(replayed);
            var refused = new TaskCompletionSource<string>();
            client.ResumeFailed += (reason, e) => refused.TrySetResult(reason);
            var slow = client.CallAsync("testkit.sleep", Map("seconds", 1L));
            var sleeping = gate.Next("testkit.sleep");
            sleeping.Connection.Drop();

            var resume = gate.Next("session.resume");
            check((string)resume.Args["token"] == "r1" && (long)resume.Args["received"] == 1, "session.resume {token, received}");
            resume.Reply(Map("uid", 7L, "resume", Grant("r2"), "replayed", 2L));
            resume.Connection.Send(Map("event", "mail.new", "data", "while away", "seq", 2L));
            resume.Connection.Send(Map("id", sleeping.Id, "ok", true, "data", "slept", "seq", 3L));
            resume.Connection.Send(Map("event", "mail.new", "data", "while away", "seq", 2L)); // never delivered twice
            resume.Connection.Send(Map("event", "mail.new", "data", "after", "seq", 4L));
            check(Wait(resumed.Task, "Resumed") == 2, "Resumed with the number replayed");
            check((string)Wait(slow, "the reply of the call in flight") == "slept", "the call in flight got its reply");
            var ack = gate.Next("session.ack");
            check((long)ack.Args["received"] >= 3, "session.ack once a quarter of the buffer came");
            ack.Reply(Map(), 5);
            var echo = client.CallAsync("sys.echo", Map("a", 1L));
            gate.Next("sys.echo").Reply(Map("a", 1L), 6);
            Wait(echo, "a call after the resume");
            lock (pushes) check(pushes.Count == 2 && (string)pushes[0] == "while away" && (string)pushes[1] == "after",
                "each push once: " + pushes.Count);
            check(client.Uid == 7 && gate.Connections == 2, "bound by the resume, on a second connection");

            var lost = client.CallAsync("testkit.sleep", Map("seconds", 1L));
            gate.Next("testkit.sleep").Connection.Drop();
            var again = gate.Next("session.resume");
            check((string)again.Args["token"] == "r2" && (long)again.Args["received"] == 6, "the latest token and seq");
            again.Fail("resume_failed", "expired: the grace period ended");
            var error = Failure(lost, "the call lost with the session") as ConnectionException;
            check(error != null && error.Code == ClientErrorCodes.ConnectionLost, "a refused resume fails the call as lost");
            check(Wait(refused.Task, "ResumeFailed") == "expired", "ResumeFailed names the reason");
            var bind = gate.Next("session.bind");
            check((string)bind.Args["token"] == "jwt" && (bool)bind.Args["resume"], "then bound with the token, asking again");
            bind.Reply(Map("uid", 7L, "resume", Grant("r3")), 1);
            var time = client.CallAsync("sys.time");
            gate.Next("sys.time").Reply(1L, 2);
            Wait(time, "a call after the re-bind");
            check(client.Resumable && client.Uid == 7, "resumable again after the re-bind");
            client.CloseAsync().Wait();
        }
    }

    /// <summary>A server without resume refuses the argument: the call goes again without it, and no later call
    /// asks; a drop then fails the call in flight, as before resume.</summary>
    public static void OlderServer(Action<bool, string> check)
    {
        using (var gate = new ScriptedGate())
        {
            var client = new GameClient(Options(gate));
            Wait(client.ConnectAsync().ContinueWith(t => { t.Wait(); return true; }), "connect");
            var login = client.CallAsync("auth.login", Map("username", "al", "password", "pw"));
            gate.Next("auth.login").Fail("bad_request", "unknown argument resume for auth.login");
            var second = gate.Next("auth.login");
            check(!second.Args.ContainsKey("resume"), "asked again without resume");
            second.Reply(Map("uid", 7L, "token", "jwt"));
            Wait(login, "the login");
            check(!client.Resumable, "not resumable");
            var bind = client.CallAsync("session.bind", Map("token", "jwt"));
            var third = gate.Next("session.bind");
            check(!third.Args.ContainsKey("resume"), "not asked again");
            third.Reply(Map("uid", 7L));
            Wait(bind, "the bind");
            var inflight = client.CallAsync("testkit.sleep", Map("seconds", 1L));
            gate.Next("testkit.sleep").Connection.Drop();
            var error = Failure(inflight, "the call in flight") as ConnectionException;
            check(error != null && error.Code == ClientErrorCodes.ConnectionLost, "a drop fails the call in flight");
            client.CloseAsync().Wait();
        }
    }
}
