// The gate's binary frames: one WebSocket binary frame = one msgpack map (docs/PROTOCOL.md, "Listeners").
// A small codec of the msgpack spec's formats, with the same plain values as Json: null, bool, long (ulong
// past long's range), double, string, byte[], List<object>, Dictionary<string, object> (keys as strings).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace GameServer.Client
{
    /// <summary>msgpack bytes to plain values and back.</summary>
    public static class MsgPack
    {
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);

        /// <summary>The msgpack encoding of <paramref name="value"/> (the same types as Json.Serialize;
        /// enums as their number).</summary>
        public static byte[] Pack(object value)
        {
            var stream = new MemoryStream();
            Write(stream, value);
            return stream.ToArray();
        }

        /// <summary>Decodes exactly one value from <paramref name="count"/> bytes of <paramref name="data"/>.</summary>
        /// <exception cref="FormatException">not exactly one msgpack value</exception>
        public static object Unpack(byte[] data, int offset, int count)
        {
            var reader = new Reader(data, offset, offset + count);
            var value = reader.Read(0);
            if (reader.Pos != offset + count) throw new FormatException("msgpack: trailing bytes");
            return value;
        }

        public static object Unpack(byte[] data) { return Unpack(data, 0, data.Length); }

        static void Write(Stream s, object value)
        {
            if (value == null) { s.WriteByte(0xc0); return; }
            if (value is IWireValue) { Write(s, ((IWireValue)value).ToWire()); return; }
            if (value is bool) { s.WriteByte((bool)value ? (byte)0xc3 : (byte)0xc2); return; }
            if (value is string) { WriteString(s, (string)value); return; }
            if (value is Enum) { WriteInt(s, Convert.ToInt64(value, CultureInfo.InvariantCulture)); return; }
            if (value is ulong) { var u = (ulong)value; if (u > long.MaxValue) { s.WriteByte(0xcf); WriteBig(s, u, 8); } else WriteInt(s, (long)u); return; }
            if (value is sbyte || value is byte || value is short || value is ushort || value is int || value is uint || value is long)
            {
                WriteInt(s, Convert.ToInt64(value, CultureInfo.InvariantCulture));
                return;
            }
            if (value is float || value is double || value is decimal)
            {
                s.WriteByte(0xcb);
                WriteBig(s, (ulong)BitConverter.DoubleToInt64Bits(Convert.ToDouble(value, CultureInfo.InvariantCulture)), 8);
                return;
            }
            var bytes = value as byte[];
            if (bytes != null)
            {
                if (bytes.Length <= 0xff) { s.WriteByte(0xc4); s.WriteByte((byte)bytes.Length); }
                else if (bytes.Length <= 0xffff) { s.WriteByte(0xc5); WriteBig(s, (ulong)bytes.Length, 2); }
                else { s.WriteByte(0xc6); WriteBig(s, (ulong)bytes.Length, 4); }
                s.Write(bytes, 0, bytes.Length);
                return;
            }
            var dict = value as IDictionary;
            if (dict != null)
            {
                WriteHeader(s, dict.Count, 0x80, 0xde, 0xdf);
                foreach (DictionaryEntry entry in dict)
                {
                    WriteString(s, Convert.ToString(entry.Key, CultureInfo.InvariantCulture));
                    Write(s, entry.Value);
                }
                return;
            }
            var enumerable = value as IEnumerable;
            if (enumerable != null)
            {
                var items = new List<object>();
                foreach (var item in enumerable) items.Add(item);
                WriteHeader(s, items.Count, 0x90, 0xdc, 0xdd);
                foreach (var item in items) Write(s, item);
                return;
            }
            throw new ArgumentException("msgpack: cannot write a " + value.GetType().Name);
        }

        static void WriteHeader(Stream s, int count, int fix, byte b16, byte b32)
        {
            if (count < 16) s.WriteByte((byte)(fix | count));
            else if (count <= 0xffff) { s.WriteByte(b16); WriteBig(s, (ulong)count, 2); }
            else { s.WriteByte(b32); WriteBig(s, (ulong)count, 4); }
        }

        static void WriteString(Stream s, string value)
        {
            var bytes = Utf8.GetBytes(value);
            if (bytes.Length < 32) s.WriteByte((byte)(0xa0 | bytes.Length));
            else if (bytes.Length <= 0xff) { s.WriteByte(0xd9); s.WriteByte((byte)bytes.Length); }
            else if (bytes.Length <= 0xffff) { s.WriteByte(0xda); WriteBig(s, (ulong)bytes.Length, 2); }
            else { s.WriteByte(0xdb); WriteBig(s, (ulong)bytes.Length, 4); }
            s.Write(bytes, 0, bytes.Length);
        }

        // The smallest form, unsigned for positive values, as msgpack-python writes them.
        static void WriteInt(Stream s, long v)
        {
            if (v >= 0)
            {
                if (v < 128) s.WriteByte((byte)v);
                else if (v <= byte.MaxValue) { s.WriteByte(0xcc); s.WriteByte((byte)v); }
                else if (v <= ushort.MaxValue) { s.WriteByte(0xcd); WriteBig(s, (ulong)v, 2); }
                else if (v <= uint.MaxValue) { s.WriteByte(0xce); WriteBig(s, (ulong)v, 4); }
                else { s.WriteByte(0xcf); WriteBig(s, (ulong)v, 8); }
            }
            else if (v >= -32) s.WriteByte((byte)(sbyte)v);
            else if (v >= sbyte.MinValue) { s.WriteByte(0xd0); s.WriteByte((byte)(sbyte)v); }
            else if (v >= short.MinValue) { s.WriteByte(0xd1); WriteBig(s, (ulong)v, 2); }
            else if (v >= int.MinValue) { s.WriteByte(0xd2); WriteBig(s, (ulong)v, 4); }
            else { s.WriteByte(0xd3); WriteBig(s, (ulong)v, 8); }
        }

        static void WriteBig(Stream s, ulong v, int size)
        {
            for (var i = size - 1; i >= 0; i--) s.WriteByte((byte)(v >> (8 * i)));
        }

        const int MaxDepth = 256;

        sealed class Reader
        {
            readonly byte[] data;
            readonly int end;
            public int Pos;

            public Reader(byte[] data, int start, int end) { this.data = data; Pos = start; this.end = end; }

            FormatException Error(string what) { return new FormatException("msgpack: " + what + " at " + Pos); }

            byte Byte()
            {
                if (Pos >= end) throw Error("unexpected end");
                return data[Pos++];
            }

            ulong Big(int size)
            {
                if (Pos + size > end) throw Error("unexpected end");
                ulong v = 0;
                for (var i = 0; i < size; i++) v = (v << 8) | data[Pos++];
                return v;
            }

            byte[] Bytes(long length)
            {
                if (length < 0 || Pos + length > end) throw Error("unexpected end");
                var result = new byte[length];
                Buffer.BlockCopy(data, Pos, result, 0, (int)length);
                Pos += (int)length;
                return result;
            }

            string Str(long length)
            {
                if (length < 0 || Pos + length > end) throw Error("unexpected end");
                string result;
                try { result = Utf8.GetString(data, Pos, (int)length); }
                catch (DecoderFallbackException) { throw Error("string not UTF-8"); }
                Pos += (int)length;
                return result;
            }

            public object Read(int depth)
            {
                if (depth > MaxDepth) throw Error("nested too deep");
                var b = Byte();
                if (b <= 0x7f) return (long)b;
                if (b >= 0xe0) return (long)(sbyte)b;
                if ((b & 0xf0) == 0x80) return Map(b & 0x0f, depth);
                if ((b & 0xf0) == 0x90) return Array(b & 0x0f, depth);
                if ((b & 0xe0) == 0xa0) return Str(b & 0x1f);
                switch (b)
                {
                    case 0xc0: return null;
                    case 0xc2: return false;
                    case 0xc3: return true;
                    case 0xc4: return Bytes((long)Big(1));
                    case 0xc5: return Bytes((long)Big(2));
                    case 0xc6: return Bytes((long)Big(4));
                    case 0xca: return (double)BitConverter.ToSingle(BitConverter.GetBytes((int)Big(4)), 0);
                    case 0xcb: return BitConverter.Int64BitsToDouble((long)Big(8));
                    case 0xcc: return (long)Big(1);
                    case 0xcd: return (long)Big(2);
                    case 0xce: return (long)Big(4);
                    case 0xcf: { var u = Big(8); if (u > long.MaxValue) return u; return (long)u; }
                    case 0xd0: return (long)(sbyte)Big(1);
                    case 0xd1: return (long)(short)Big(2);
                    case 0xd2: return (long)(int)Big(4);
                    case 0xd3: return (long)Big(8);
                    case 0xd9: return Str((long)Big(1));
                    case 0xda: return Str((long)Big(2));
                    case 0xdb: return Str((long)Big(4));
                    case 0xdc: return Array((int)Big(2), depth);
                    case 0xdd: return Array((int)Big(4), depth);
                    case 0xde: return Map((int)Big(2), depth);
                    case 0xdf: return Map((int)Big(4), depth);
                }
                throw Error("unsupported type byte 0x" + b.ToString("x2", CultureInfo.InvariantCulture)); // ext types: the server sends none
            }

            List<object> Array(int count, int depth)
            {
                if (count < 0 || count > end - Pos) throw Error("array longer than the data");
                var result = new List<object>(count);
                for (var i = 0; i < count; i++) result.Add(Read(depth + 1));
                return result;
            }

            Dictionary<string, object> Map(int count, int depth)
            {
                if (count < 0 || count > end - Pos) throw Error("map longer than the data");
                var result = new Dictionary<string, object>(count);
                for (var i = 0; i < count; i++)
                {
                    var key = Read(depth + 1);
                    // Python dicts with int keys (e.g. item kinds) arrive as int keys; JSON would make them strings.
                    var name = key as string ?? Convert.ToString(key, CultureInfo.InvariantCulture);
                    result[name] = Read(depth + 1);
                }
                return result;
            }
        }
    }
}
