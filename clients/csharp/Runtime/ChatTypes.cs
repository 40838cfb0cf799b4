// The chat edge's values (docs/PROTOCOL.md, "Chat edge" and "Chat history"): channels, the LOGIN identity, messages
// and HISTORY lines, read from their JSON payloads.
using System;
using System.Collections.Generic;

namespace GameServer.Client
{
    /// <summary>Where a chat line goes: its command.</summary>
    public enum ChatChannel
    {
        /// <summary><c>PUBLIC</c>: everyone logged into the same world.</summary>
        Public,
        /// <summary><c>FAMILY</c>: the sender's family (<c>ERROR not_in_family</c> without one).</summary>
        Family,
    }

    /// <summary>The <c>OK</c> answer to LOGIN: who the server took the player for.</summary>
    public sealed class ChatIdentity
    {
        public long Uid { get; private set; }
        public string Name { get; private set; }
        public long World { get; private set; }
        /// <summary>The family id, or null outside a family.</summary>
        public long? Family { get; private set; }

        public ChatIdentity(long uid, string name, long world, long? family)
        {
            Uid = uid;
            Name = name;
            World = world;
            Family = family;
        }
    }

    /// <summary>A <c>PUBLIC</c> / <c>FAMILY</c> message, delivered live (the sender gets its own copy too) or from
    /// the channel's history.</summary>
    public sealed class ChatMessage
    {
        public ChatChannel Channel { get; private set; }
        /// <summary>Unique across the server's processes, e.g. <c>1733150000000-a1b2c3-42</c>: names the line for
        /// <c>chat.report</c>.</summary>
        public string Id { get; private set; }
        /// <summary>The sender; 0 for a message of the server itself.</summary>
        public long Uid { get; private set; }
        public string Name { get; private set; }
        public string Text { get; private set; }
        /// <summary>The server's clock when it was published, ms since the epoch.</summary>
        public long Ts { get; private set; }

        public ChatMessage(ChatChannel channel, string id, long uid, string name, string text, long ts)
        {
            Channel = channel;
            Id = id;
            Uid = uid;
            Name = name;
            Text = text;
            Ts = ts;
        }

        /// <summary>A message's JSON object (a <c>PUBLIC</c> / <c>FAMILY</c> payload, or one of a <c>HISTORY</c>
        /// line's <c>lines</c>). Throws GameServerException (<c>protocol</c>) for another shape.</summary>
        public static ChatMessage FromWire(ChatChannel channel, object m)
        {
            return new ChatMessage(channel, Wire.Str(Wire.Field(m, "id")), Wire.Int(Wire.Field(m, "uid")),
                Wire.Str(Wire.Field(m, "name")), Wire.Str(Wire.Field(m, "text")), Wire.Int(Wire.Field(m, "ts")));
        }
    }

    /// <summary>A <c>HISTORY</c> line: a channel's last messages, oldest first (none when it has none).</summary>
    public sealed class ChannelHistory
    {
        public ChatChannel Channel { get; private set; }
        public IList<ChatMessage> Lines { get; private set; }

        public ChannelHistory(ChatChannel channel, IList<ChatMessage> lines)
        {
            Channel = channel;
            Lines = lines;
        }

        /// <summary>A <c>HISTORY</c> line's payload, <c>{"channel": "public" | "family", "lines": [...]}</c>.
        /// Throws GameServerException (<c>protocol</c>) for another shape.</summary>
        public static ChannelHistory Parse(string payload)
        {
            object body;
            try { body = Json.Parse(payload); }
            catch (FormatException e) { throw new GameServerException(ClientErrorCodes.Protocol, "HISTORY: " + e.Message, e); }
            var name = Wire.Str(Wire.Field(body, "channel"));
            ChatChannel channel;
            if (name == "public") channel = ChatChannel.Public;
            else if (name == "family") channel = ChatChannel.Family;
            else throw new GameServerException(ClientErrorCodes.Protocol, "HISTORY of an unknown channel " + name);
            return new ChannelHistory(channel, Wire.List(Wire.Field(body, "lines"), m => ChatMessage.FromWire(channel, m)).AsReadOnly());
        }
    }
}
