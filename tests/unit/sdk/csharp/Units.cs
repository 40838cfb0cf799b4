// Unit checks of the C# SDK without a server, compiled by tests/unit/sdk/test_csharp_mono.py with the runtime and
// the layer generated from tests/unit/sdk/shop.py:
//
//   mono Units.exe <hex of msgpack.packb(SAMPLE)>
//
// It checks the generated classes and the codecs, then prints two lines for the test to compare with Python's
// msgpack and json: "json <the decoded sample as JSON>" and "msgpack <hex of MsgPack.Pack(the decoded sample)>".
using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using GameServer.Api;
using GameServer.Client;

static class Units
{
    static int failures;

    static void Check(bool condition, string what)
    {
        if (condition) return;
        failures++;
        Console.WriteLine("FAIL " + what);
    }

    static void Throws<T>(Action action, string what) where T : Exception
    {
        try
        {
            action();
        }
        catch (T)
        {
            return;
        }
        catch (Exception e)
        {
            Check(false, what + ": threw " + e.GetType().Name);
            return;
        }
        Check(false, what + ": did not throw");
    }

    static int Main(string[] args)
    {
        Generated();
        JsonCodec();
        MsgPackCodec();
        DispatcherModes();
        ChatLines();
        ResumeBookkeeping();
        ResumeChecks.ResumeAndRefusal(Check);
        ResumeChecks.OlderServer(Check);
        var sample = MsgPack.Unpack(FromHex(args[0]));
        Console.WriteLine("json " + Json.Serialize(sample));
        Console.WriteLine("msgpack " + ToHex(MsgPack.Pack(sample)));
        return failures == 0 ? 0 : 1;
    }

    static void Generated()
    {
        var wire = Json.Parse("{\"id\": 7, \"item\": 2, \"paid\": 1.5, \"ok\": true, \"left\": {\"1\": 3}, " +
            "\"lines\": [{\"name\": \"a\", \"data\": \"AAE=\"}], \"when\": null, \"memo\": \"m\"}");
        var receipt = Receipt.FromWire(wire);
        Check(receipt.Id == 7 && receipt.Item == ItemKind.DIAMOND && receipt.Paid == 1.5 && receipt.Ok, "scalars and enum");
        Check(receipt.Left["1"] == 3 && receipt.Lines.Count == 1 && receipt.Lines[0].Name == "a", "dict and list of objects");
        Check(receipt.Lines[0].Data.Length == 2 && receipt.Lines[0].Data[1] == 1, "bytes from base64 (JSON)");
        Check(receipt.When == null && receipt.Memo == "m" && receipt.Extra == null, "null, NotRequired present and absent");
        var back = Json.Serialize(receipt);
        Check(back.Contains("\"item\":2") && back.Contains("\"when\":null") && !back.Contains("extra"), "ToWire: " + back);
        var again = Receipt.FromWire(MsgPack.Unpack(MsgPack.Pack(receipt)));
        Check(again.Lines[0].Data[1] == 1 && again.Item == ItemKind.DIAMOND, "through msgpack (bytes as bin)");
        Throws<GameServerException>(() => Receipt.FromWire(Json.Parse("{\"id\": \"7\"}")), "a string where an int is expected");
        try
        {
            Receipt.FromWire(Json.Parse("{\"id\": \"7\"}"));
        }
        catch (GameServerException e)
        {
            Check(e.Code == ClientErrorCodes.Protocol, "a wire mismatch has code protocol");
        }

        // A client that never connected: the typed call fails with the connection's code, typed.
        var client = new ApiClient(new ClientOptions("ws://127.0.0.1:9/gate") { Callbacks = CallbackMode.Immediate });
        var task = client.Shop.BuyAsync(ItemKind.COIN, 2);
        try
        {
            task.GetAwaiter().GetResult();
            Check(false, "a call before connecting succeeded");
        }
        catch (ConnectionException e)
        {
            Check(e.Code == ClientErrorCodes.NotConnected, "not_connected before connect: " + e.Code);
        }
        Check(client.StateModule != null && client.Shop != null, "a module named like a GameClient member");
        Check(ErrorCodes.NOT_ENOUGH_ITEMS == "not_enough_items" && ErrorCode.BAD_REQUEST == "bad_request", "codes");
    }

    static void JsonCodec()
    {
        var parsed = (Dictionary<string, object>)Json.Parse(
            " {\"a\": [1, -2, 3.25, 1e3, true, false, null], \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\", \"big\": 92233720368547758070} ");
        var a = (List<object>)parsed["a"];
        Check((long)a[0] == 1 && (long)a[1] == -2 && (double)a[2] == 3.25 && (double)a[3] == 1000.0, "numbers");
        Check((bool)a[4] && !(bool)a[5] && a[6] == null, "literals");
        Check((string)parsed["s"] == "q\"\\/\b\f\n\r\té\U0001F600", "escapes and a surrogate pair: " + parsed["s"]);
        Check((double)parsed["big"] > 9e19, "an integer past long is a double");
        var text = Json.Serialize(new Dictionary<string, object> { { "k", "a\"b\\c\n\u0001é" }, { "n", -5L }, { "f", 0.1 }, { "e", ItemKind.COIN } });
        Check(text == "{\"k\":\"a\\\"b\\\\c\\n\\u0001é\",\"n\":-5,\"f\":0.1,\"e\":1}", "serialize: " + text);
        Throws<FormatException>(() => Json.Parse("{\"a\": 1} x"), "trailing characters");
        Throws<FormatException>(() => Json.Parse("{\"a\": }"), "a missing value");
        Throws<FormatException>(() => Json.Parse("[1, 2"), "an unclosed array");
        Throws<FormatException>(() => Json.Parse("\"tab\there\""), "a raw control character");
        Throws<FormatException>(() => Json.Parse(new string('[', 300) + new string(']', 300)), "nested too deep");
        Throws<ArgumentException>(() => Json.Serialize(double.NaN), "NaN");
    }

    static void MsgPackCodec()
    {
        foreach (var n in new long[] { 0, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128, -129, -32768, -32769,
                     int.MaxValue, (long)int.MaxValue + 1, int.MinValue, (long)int.MinValue - 1, long.MaxValue, long.MinValue })
            Check((long)MsgPack.Unpack(MsgPack.Pack(n)) == n, "int " + n);
        Check((ulong)MsgPack.Unpack(MsgPack.Pack(ulong.MaxValue)) == ulong.MaxValue, "uint64");
        foreach (var length in new[] { 0, 31, 32, 255, 256, 65535, 65536 })
        {
            var s = new string('x', length);
            Check((string)MsgPack.Unpack(MsgPack.Pack(s)) == s, "str of " + length);
            var list = new List<object>();
            for (var i = 0; i < Math.Min(length, 70000); i++) list.Add((long)i);
            Check(((List<object>)MsgPack.Unpack(MsgPack.Pack(list))).Count == list.Count, "array of " + length);
        }
        var map = new Dictionary<string, object>();
        for (var i = 0; i < 20; i++) map["k" + i] = (long)i;
        Check(((Dictionary<string, object>)MsgPack.Unpack(MsgPack.Pack(map)))["k19"].Equals(19L), "map16");
        Check((double)MsgPack.Unpack(MsgPack.Pack(2.5)) == 2.5 && (double)MsgPack.Unpack(new byte[] { 0xca, 0x40, 0x20, 0, 0 }) == 2.5, "floats");
        var intKeys = (Dictionary<string, object>)MsgPack.Unpack(new byte[] { 0x81, 0x01, 0xa1, 0x61 });
        Check((string)intKeys["1"] == "a", "an int key becomes a string key");
        Throws<FormatException>(() => MsgPack.Unpack(new byte[] { 0x81, 0xa1 }), "truncated");
        Throws<FormatException>(() => MsgPack.Unpack(new byte[] { 0x01, 0x02 }), "trailing bytes");
        Throws<FormatException>(() => MsgPack.Unpack(new byte[] { 0xa2, 0xff, 0xfe }), "a string not UTF-8");
        Throws<FormatException>(() => MsgPack.Unpack(new byte[] { 0xdd, 0x7f, 0xff, 0xff, 0xff }), "a length past the data");
        Throws<FormatException>(() => MsgPack.Unpack(new byte[] { 0xc1 }), "the never-used byte");
    }

    static void ChatLines()
    {
        var line = "{\"id\": \"1733150000000-a1b2c3-42\", \"uid\": 7, \"name\": \"Al\", \"text\": \"hi \", \"ts\": 1733150000000}";
        var history = ChannelHistory.Parse("{\"channel\": \"family\", \"lines\": [" + line + ", " + line.Replace("-42", "-43") + "]}");
        Check(history.Channel == ChatChannel.Family && history.Lines.Count == 2, "a HISTORY line's channel and lines");
        var first = history.Lines[0];
        Check(first.Channel == ChatChannel.Family && first.Id == "1733150000000-a1b2c3-42" && first.Uid == 7 &&
              first.Name == "Al" && first.Text == "hi " && first.Ts == 1733150000000L, "a history line's fields");
        Check(history.Lines[1].Id.EndsWith("-43"), "lines in order");
        Check(ChannelHistory.Parse("{\"channel\": \"public\", \"lines\": []}").Lines.Count == 0, "an empty history");
        var live = ChatMessage.FromWire(ChatChannel.Public, Json.Parse(line));
        Check(live.Channel == ChatChannel.Public && live.Id == first.Id, "a live message has its id");
        Throws<GameServerException>(() => ChannelHistory.Parse("{\"channel\": \"world\", \"lines\": []}"), "an unknown channel");
        Throws<GameServerException>(() => ChannelHistory.Parse("{\"channel\": \"public\"}"), "no lines");
        Throws<GameServerException>(() => ChannelHistory.Parse("not json"), "not JSON");
        Throws<GameServerException>(() => ChatMessage.FromWire(ChatChannel.Public, Json.Parse("{\"uid\": 7, \"name\": \"Al\", \"text\": \"hi\", \"ts\": 1}")),
            "a message without an id");
    }

    static void ResumeBookkeeping()
    {
        var grant = ResumeGrant.FromReply(Json.Parse("{\"uid\": 1, \"resume\": {\"token\": \"r1\", \"grace\": 30, \"buffer\": 8}}"));
        Check(grant != null && grant.Token == "r1" && grant.Grace == 30 && grant.Buffer == 8, "a grant from a reply");
        Check(ResumeGrant.FromReply(Json.Parse("{\"uid\": 1}")) == null, "no grant");
        Check(ResumeGrant.FromReply(Json.Parse("{\"resume\": {\"token\": 5, \"grace\": 30, \"buffer\": 8}}")) == null, "a malformed grant");
        Check(ResumeState.FailureReason("expired: the grace period ended") == "expired" && ResumeState.FailureReason("lost") == "lost",
            "the reason word of resume_failed");

        var state = new ResumeState();
        Check(!state.AckDelay(0).HasValue, "no ack while not resumable");
        state.Start(grant, 1);
        var delivered = new List<bool>();
        foreach (var seq in new long?[] { 2, 3, 3, 2, null, 4 }) delivered.Add(state.Accept(seq));
        Check(string.Join(",", delivered) == "True,True,False,False,True,True" && state.Received == 4, "each seq once: " + string.Join(",", delivered));
        Check(state.AckDelay(0) == 0, "an ack is due after a quarter of the buffer");
        Check(state.Ack(5000) == 4 && !state.AckDelay(5000).HasValue, "acked");
        state.Accept(5);
        state.Accept(6);
        Check(state.AckDelay(5200) == ResumeState.AckInterval - 200, "at most one ack a second");
        Check(state.AckDelay(5000 + ResumeState.AckInterval) == 0, "due a second after the last");
        state.Renew(new ResumeGrant("r2", 30, 8));
        Check(state.Grant.Token == "r2" && !state.Accept(6), "a resume keeps the numbering");
        state.Start(grant, 1);
        Check(state.Accept(2), "a new login numbers again");
        state.Forget();
        Check(state.Grant == null && state.Received == 0, "forgotten");
    }

    static void DispatcherModes()
    {
        var manual = new Dispatcher(CallbackMode.Manual);
        var ran = 0;
        manual.Post(() => ran++);
        manual.Post(() => ran++);
        Check(ran == 0 && manual.NeedsUpdate, "manual waits for Update");
        Check(manual.Update() == 2 && ran == 2 && manual.Update() == 0, "Update runs the queue once");
        var immediate = new Dispatcher(CallbackMode.Immediate);
        immediate.Post(() => ran++);
        Check(ran == 3 && !immediate.NeedsUpdate, "immediate runs at once");
        var context = new Recording();
        SynchronizationContext.SetSynchronizationContext(context);
        var caller = new Dispatcher(CallbackMode.CallerContext);
        SynchronizationContext.SetSynchronizationContext(null);
        caller.Post(() => ran++);
        Check(context.Posted == 1 && ran == 4 && !caller.NeedsUpdate, "the caller's context gets the callback");
        var none = new Dispatcher(CallbackMode.CallerContext); // no context here: queued for Update
        none.Post(() => ran++);
        Check(none.NeedsUpdate && ran == 4 && none.Update() == 1 && ran == 5, "no context: Update");
        var backoff = new Backoff { Min = TimeSpan.FromMilliseconds(100), Max = TimeSpan.FromSeconds(1) };
        for (var attempt = 1; attempt < 40; attempt++)
        {
            var ceiling = Math.Min(1000, 100 * Math.Pow(2, attempt - 1));
            var delay = backoff.Delay(attempt).TotalMilliseconds;
            Check(delay >= ceiling / 2 && delay <= ceiling, "backoff " + attempt + ": " + delay);
        }
    }

    sealed class Recording : SynchronizationContext
    {
        public int Posted;

        public override void Post(SendOrPostCallback d, object state)
        {
            Posted++;
            d(state);
        }
    }

    static byte[] FromHex(string hex)
    {
        var bytes = new byte[hex.Length / 2];
        for (var i = 0; i < bytes.Length; i++) bytes[i] = Convert.ToByte(hex.Substring(2 * i, 2), 16);
        return bytes;
    }

    static string ToHex(byte[] bytes)
    {
        var sb = new StringBuilder();
        foreach (var b in bytes) sb.Append(b.ToString("x2"));
        return sb.ToString();
    }
}
