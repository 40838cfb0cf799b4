// Conversions from decoded wire values (Json / MsgPack) to the C# types of the generated typed layer.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;

namespace GameServer.Client
{
    /// <summary>A typed value that knows its wire shape (the generated TypedDict classes): Json and MsgPack
    /// write <see cref="ToWire"/>'s result in its place.</summary>
    public interface IWireValue
    {
        object ToWire();
    }

    /// <summary>Wire value -> typed value; a value of the wrong shape throws a GameServerException with code
    /// <c>protocol</c> naming what was expected, so a server/SDK mismatch is loud.</summary>
    public static class Wire
    {
        static GameServerException Wrong(string expected, object value)
        {
            return new GameServerException(ClientErrorCodes.Protocol,
                "expected " + expected + ", got " + (value == null ? "null" : value.GetType().Name));
        }

        /// <summary><paramref name="read"/> applied to <paramref name="value"/> (the generated classes' fields).</summary>
        public static T Read<T>(object value, Func<object, T> read) { return read(value); }

        /// <summary>The value as it came (for handlers without a return annotation).</summary>
        public static object Any(object value) { return value; }

        public static long Int(object value)
        {
            if (value is long) return (long)value;
            if (value is ulong || value is int || value is uint || value is short || value is ushort || value is byte || value is sbyte)
                return Convert.ToInt64(value, CultureInfo.InvariantCulture);
            if (value is double && Math.Floor((double)value) == (double)value) return (long)(double)value;
            throw Wrong("an integer", value);
        }

        public static double Float(object value)
        {
            if (value is double) return (double)value;
            if (value is long || value is ulong || value is int || value is float) return Convert.ToDouble(value, CultureInfo.InvariantCulture);
            throw Wrong("a number", value);
        }

        public static bool Bool(object value)
        {
            if (value is bool) return (bool)value;
            throw Wrong("a bool", value);
        }

        public static string Str(object value)
        {
            var s = value as string;
            if (s != null) return s;
            throw Wrong("a string", value);
        }

        /// <summary>msgpack bin, or a base64 string (what JSON can carry).</summary>
        public static byte[] Bytes(object value)
        {
            var b = value as byte[];
            if (b != null) return b;
            var s = value as string;
            if (s != null) return Convert.FromBase64String(s);
            throw Wrong("bytes", value);
        }

        public static T Enum<T>(object value) where T : struct
        {
            return (T)System.Enum.ToObject(typeof(T), Int(value));
        }

        public static List<T> List<T>(object value, Func<object, T> item)
        {
            var list = value as IList;
            if (list == null) throw Wrong("a list", value);
            var result = new List<T>(list.Count);
            foreach (var x in list) result.Add(item(x));
            return result;
        }

        public static Dictionary<string, T> Dict<T>(object value, Func<object, T> item)
        {
            var map = value as IDictionary<string, object>;
            if (map == null) throw Wrong("a map", value);
            var result = new Dictionary<string, T>(map.Count);
            foreach (var pair in map) result[pair.Key] = item(pair.Value);
            return result;
        }

        /// <summary>A map's field, or null when it is absent.</summary>
        public static object Field(object map, string name)
        {
            var dict = map as IDictionary<string, object>;
            if (dict == null) throw Wrong("a map", map);
            object value;
            return dict.TryGetValue(name, out value) ? value : null;
        }

        public static T? Nullable<T>(object value, Func<object, T> convert) where T : struct
        {
            if (value == null) return null;
            return convert(value);
        }

        public static T OrNull<T>(object value, Func<object, T> convert) where T : class
        {
            return value == null ? null : convert(value);
        }
    }
}
