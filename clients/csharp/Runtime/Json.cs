// The JSON text frames of the gate (docs/PROTOCOL.md, "Listeners") and the HTTP bodies of /auth/*.
// .NET Standard 2.1 has no JSON library without a package, so this is a small one: values are the same
// plain objects as MsgPack's (null, bool, long, double, string, List<object>, Dictionary<string, object>).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace GameServer.Client
{
    /// <summary>JSON text to plain values and back.</summary>
    public static class Json
    {
        /// <summary>The JSON text of <paramref name="value"/>: null, bool, integers, floats, string, byte[]
        /// (as base64), enums (as their number), IDictionary (keys as strings) and IEnumerable.</summary>
        public static string Serialize(object value)
        {
            var sb = new StringBuilder();
            Write(sb, value);
            return sb.ToString();
        }

        /// <summary>Parses one JSON value; objects become Dictionary&lt;string, object&gt;, arrays
        /// List&lt;object&gt;, integers long (double past long's range), other numbers double.</summary>
        /// <exception cref="FormatException">not exactly one JSON value</exception>
        public static object Parse(string text)
        {
            var parser = new Parser(text);
            parser.SkipSpace();
            var value = parser.ReadValue(0);
            parser.SkipSpace();
            if (parser.Pos != text.Length) throw new FormatException("JSON: trailing characters at " + parser.Pos);
            return value;
        }

        static void Write(StringBuilder sb, object value)
        {
            if (value == null) { sb.Append("null"); return; }
            if (value is IWireValue) { Write(sb, ((IWireValue)value).ToWire()); return; }
            if (value is string) { WriteString(sb, (string)value); return; }
            if (value is bool) { sb.Append((bool)value ? "true" : "false"); return; }
            if (value is Enum) { sb.Append(Convert.ToInt64(value, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture)); return; }
            if (value is double || value is float)
            {
                var d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d)) throw new ArgumentException("JSON has no NaN or Infinity");
                sb.Append(d.ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (value is decimal) { sb.Append(((decimal)value).ToString(CultureInfo.InvariantCulture)); return; }
            if (value is sbyte || value is byte || value is short || value is ushort || value is int || value is uint
                || value is long || value is ulong)
            {
                sb.Append(Convert.ToString(value, CultureInfo.InvariantCulture));
                return;
            }
            if (value is byte[]) { WriteString(sb, Convert.ToBase64String((byte[])value)); return; }
            var dict = value as IDictionary;
            if (dict != null)
            {
                sb.Append('{');
                var first = true;
                foreach (DictionaryEntry entry in dict)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteString(sb, Convert.ToString(entry.Key, CultureInfo.InvariantCulture));
                    sb.Append(':');
                    Write(sb, entry.Value);
                }
                sb.Append('}');
                return;
            }
            var list = value as IEnumerable;
            if (list != null)
            {
                sb.Append('[');
                var first = true;
                foreach (var item in list)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Write(sb, item);
                }
                sb.Append(']');
                return;
            }
            throw new ArgumentException("JSON: cannot write a " + value.GetType().Name);
        }

        static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        const int MaxDepth = 256; // deeper input is refused rather than overflowing the stack

        sealed class Parser
        {
            readonly string text;
            public int Pos;

            public Parser(string text) { this.text = text; }

            public void SkipSpace()
            {
                while (Pos < text.Length && (text[Pos] == ' ' || text[Pos] == '\t' || text[Pos] == '\n' || text[Pos] == '\r')) Pos++;
            }

            FormatException Error(string what) { return new FormatException("JSON: " + what + " at " + Pos); }

            public object ReadValue(int depth)
            {
                if (depth > MaxDepth) throw Error("nested too deep");
                if (Pos >= text.Length) throw Error("unexpected end");
                var c = text[Pos];
                if (c == '{') return ReadObject(depth);
                if (c == '[') return ReadArray(depth);
                if (c == '"') return ReadString();
                if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
                if (Literal("true")) return true;
                if (Literal("false")) return false;
                if (Literal("null")) return null;
                throw Error("unexpected character '" + c + "'");
            }

            bool Literal(string word)
            {
                if (string.CompareOrdinal(text, Pos, word, 0, word.Length) != 0) return false;
                Pos += word.Length;
                return true;
            }

            Dictionary<string, object> ReadObject(int depth)
            {
                var result = new Dictionary<string, object>();
                Pos++;
                SkipSpace();
                if (Pos < text.Length && text[Pos] == '}') { Pos++; return result; }
                while (true)
                {
                    SkipSpace();
                    if (Pos >= text.Length || text[Pos] != '"') throw Error("expected a string key");
                    var key = ReadString();
                    SkipSpace();
                    if (Pos >= text.Length || text[Pos] != ':') throw Error("expected ':'");
                    Pos++;
                    SkipSpace();
                    result[key] = ReadValue(depth + 1);
                    SkipSpace();
                    if (Pos < text.Length && text[Pos] == ',') { Pos++; continue; }
                    if (Pos < text.Length && text[Pos] == '}') { Pos++; return result; }
                    throw Error("expected ',' or '}'");
                }
            }

            List<object> ReadArray(int depth)
            {
                var result = new List<object>();
                Pos++;
                SkipSpace();
                if (Pos < text.Length && text[Pos] == ']') { Pos++; return result; }
                while (true)
                {
                    SkipSpace();
                    result.Add(ReadValue(depth + 1));
                    SkipSpace();
                    if (Pos < text.Length && text[Pos] == ',') { Pos++; continue; }
                    if (Pos < text.Length && text[Pos] == ']') { Pos++; return result; }
                    throw Error("expected ',' or ']'");
                }
            }

            string ReadString()
            {
                Pos++; // the opening quote
                var sb = new StringBuilder();
                while (true)
                {
                    if (Pos >= text.Length) throw Error("unterminated string");
                    var c = text[Pos++];
                    if (c == '"') return sb.ToString();
                    if (c < 0x20) throw Error("control character in a string");
                    if (c != '\\') { sb.Append(c); continue; }
                    if (Pos >= text.Length) throw Error("unterminated escape");
                    var e = text[Pos++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (Pos + 4 > text.Length) throw Error("short \\u escape");
                            int code;
                            if (!int.TryParse(text.Substring(Pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                                throw Error("bad \\u escape");
                            sb.Append((char)code);
                            Pos += 4;
                            break;
                        default: throw Error("bad escape");
                    }
                }
            }

            object ReadNumber()
            {
                var start = Pos;
                if (text[Pos] == '-') Pos++;
                var integral = true;
                while (Pos < text.Length)
                {
                    var c = text[Pos];
                    if (c >= '0' && c <= '9') { Pos++; continue; }
                    if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') { integral = false; Pos++; continue; }
                    break;
                }
                var s = text.Substring(start, Pos - start);
                long l;
                if (integral && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return l;
                double d;
                if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out d) && !double.IsInfinity(d)) return d;
                throw Error("bad number '" + s + "'");
            }
        }
    }
}
