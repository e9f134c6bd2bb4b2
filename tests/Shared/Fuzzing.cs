using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Morphisms.Testing;

/// <summary>An integer of a binary format (a version, type, length, count or offset) that structural mutations aim at.</summary>
/// <param name="Name">The field's name in the format, shown in the failure message.</param>
/// <param name="Offset">Where it starts in the seed.</param>
/// <param name="Size">1, 2, 4 or 8 bytes.</param>
/// <param name="BigEndian">Network byte order (TLS); Intel's and AMD's formats are little-endian.</param>
public readonly record struct WireField(string Name, int Offset, int Size, bool BigEndian = false);

/// <summary>One seed input — a real vector or a synthetic builder's output — and the fields of its format.</summary>
public sealed record FuzzSeed(string Name, byte[] Data, IReadOnlyList<WireField>? Fields = null)
{
    /// <summary>The seed's fields, or none.</summary>
    public IReadOnlyList<WireField> KnownFields => Fields ?? [];

    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>A mutated input and what was done to it, so a failure names the exact case.</summary>
public sealed record Mutation(string Description, byte[] Data);

/// <summary>What a fuzz run saw: how many inputs the parser accepted, how many it refused with an allowed exception, and its slowest case.</summary>
public sealed record FuzzStats(int Accepted, int Rejected, TimeSpan Slowest, string SlowestCase);

/// <summary>
/// A deterministic mutation fuzzer for parsers of untrusted bytes. Every run takes the same inputs in the same order
/// (System.Random with a fixed seed, one generator per iteration), so a failure message — target, seed, iteration, the
/// seed input's name and the mutation — reproduces it. <c>MORPHISMS_FUZZ_SEED</c> and <c>MORPHISMS_FUZZ_SCALE</c>
/// change the seed and multiply the iteration count for exploratory runs; the suite always runs the defaults.
/// </summary>
public static class Fuzzer
{
    /// <summary>A single parse taking longer than this is reported as a hang (a loop that does not end on hostile input).</summary>
    public static readonly TimeSpan SlowCall = TimeSpan.FromSeconds(5);

    /// <summary>The whole run is abandoned, and reported with the case in progress, after this long.</summary>
    public static readonly TimeSpan RunLimit = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Parses every seed (each must be accepted: the fuzzer starts from valid input), then the systematic mutations of
    /// every seed (<see cref="Mutations.Systematic"/>), then <paramref name="iterations"/> random mutations made by
    /// <paramref name="mutate"/>. Each parse must return or throw one of <paramref name="allowed"/>; anything else
    /// (IndexOutOfRange, ArgumentOutOfRange, NullReference, Overflow, InvalidCast, OutOfMemory, KeyNotFound…) or a
    /// call slower than <see cref="SlowCall"/> fails the test with every offending case listed. A parser that reports
    /// malformed input in its result rather than by throwing passes no <paramref name="allowed"/> type.
    /// </summary>
    public static FuzzStats Run(string target, int seed, int iterations, IReadOnlyList<FuzzSeed> seeds,
        Func<Random, FuzzSeed, Mutation> mutate, Action<byte[]> parse, params Type[] allowed) =>
        Run(target, seed, iterations, seeds, mutate, (_, bytes) => parse(bytes), allowed);

    /// <summary>As <see cref="Run(string, int, int, IReadOnlyList{FuzzSeed}, Func{Random, FuzzSeed, Mutation}, Action{byte[]}, Type[])"/>, telling the parser which seed input was mutated.</summary>
    public static FuzzStats Run(string target, int seed, int iterations, IReadOnlyList<FuzzSeed> seeds,
        Func<Random, FuzzSeed, Mutation> mutate, Action<FuzzSeed, byte[]> parse, params Type[] allowed)
    {
        ArgumentOutOfRangeException.ThrowIfZero(seeds.Count);
        seed = Environment.GetEnvironmentVariable("MORPHISMS_FUZZ_SEED") is { Length: > 0 } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : seed;
        iterations *= Environment.GetEnvironmentVariable("MORPHISMS_FUZZ_SCALE") is { Length: > 0 } k ? int.Parse(k, System.Globalization.CultureInfo.InvariantCulture) : 1;

        var failures = new List<string>();
        int accepted = 0, rejected = 0;
        string current = "(not started)", slowestCase = "";
        var slowest = TimeSpan.Zero;

        void Try(string where, FuzzSeed input, Mutation mutation)
        {
            current = $"{where}, seed input {input.Name}, {mutation.Description}";
            var clock = Stopwatch.StartNew();
            try
            {
                parse(input, mutation.Data);
                accepted++;
            }
            catch (Exception e) when (allowed.Any(t => t.IsInstanceOfType(e)))
            {
                rejected++;
            }
            catch (Exception e)
            {
                failures.Add($"{current}: {e.GetType().Name}: {e.Message}\n    at {FirstFrame(e)}");
            }

            if (clock.Elapsed > slowest)
            {
                (slowest, slowestCase) = (clock.Elapsed, current);
            }

            if (clock.Elapsed > SlowCall)
            {
                failures.Add($"{current}: took {clock.Elapsed.TotalSeconds:F1} s");
            }
        }

        void Loop()
        {
            try
            {
                Cases();
            }
            catch (Exception e)
            {
                failures.Add($"the fuzzer itself failed at {current}: {e}");
            }
        }

        void Cases()
        {
            foreach (var input in seeds)
            {
                current = $"unmutated seed input {input.Name}";
                try
                {
                    parse(input, input.Data);
                }
                catch (Exception e)
                {
                    failures.Add($"{current} must parse (the fuzzer starts from valid input): {e.GetType().Name}: {e.Message}");
                }
            }

            var systematic = 0;
            foreach (var input in seeds)
            {
                foreach (var mutation in Mutations.Systematic(input))
                {
                    Try($"systematic #{systematic++}", input, mutation);
                }
            }

            for (var i = 0; i < iterations; i++)
            {
                var rng = new Random(unchecked((seed * 1_000_003) + i));
                var input = seeds[rng.Next(seeds.Count)];
                Try($"seed {seed} iteration {i}", input, mutate(rng, input));
            }
        }

        // A dedicated thread, so a parser that never returns fails the test instead of hanging the suite.
        var worker = new Thread(Loop, 16 * 1024 * 1024) { IsBackground = true, Name = $"fuzz {target}" };
        worker.Start();
        if (!worker.Join(RunLimit))
        {
            Assert.Fail($"fuzz {target}: no answer within {RunLimit.TotalSeconds} s, stuck at {current}");
        }

        if (failures.Count > 0)
        {
            Assert.Fail($"fuzz {target}: {failures.Count} input(s) crashed the parser instead of being refused with "
                + (allowed.Length == 0 ? "its result (it throws nothing)" : string.Join(" or ", allowed.Select(t => t.Name))) + ":\n" + string.Join("\n", failures.Take(12)));
        }

        return new FuzzStats(accepted, rejected, slowest, slowestCase);
    }

    /// <summary>The innermost frames, down to the first of Morphisms' own: where the parser went wrong.</summary>
    private static string FirstFrame(Exception e)
    {
        var frames = new StackTrace(e, fNeedFileInfo: false).GetFrames()
            .Select(f => f.GetMethod())
            .Where(m => m is not null)
            .Select(m => (Name: $"{m!.DeclaringType?.Name}.{m.Name}", Ours: m.DeclaringType?.Namespace?.StartsWith("Morphisms", StringComparison.Ordinal) == true && m.DeclaringType?.Namespace?.StartsWith("Morphisms.Testing", StringComparison.Ordinal) != true))
            .ToList();
        var ours = frames.FindIndex(f => f.Ours);
        return string.Join(" < ", frames.Take(ours < 0 ? 3 : ours + 1).TakeLast(4).Select(f => f.Name));
    }
}

/// <summary>The mutations: byte-level, structural (wire fields, DER TLVs, PEM blocks) and JSON-aware.</summary>
public static class Mutations
{
    private static readonly byte[] Interesting = [0x00, 0x01, 0x02, 0x7F, 0x80, 0xFE, 0xFF];

    /// <summary>
    /// The deterministic part every run starts with: truncation at every length class (the shortest and longest lengths,
    /// every field boundary ±1 and a spread of lengths in between), appended bytes, and every wire field set to 0, 1,
    /// its maximum, its value ±1, twice its value and the lengths that land exactly on or just past the input's end.
    /// </summary>
    public static IEnumerable<Mutation> Systematic(FuzzSeed seed)
    {
        var data = seed.Data;
        // The first and last 16 lengths, every field boundary ±1, and 128 lengths spread between.
        var lengths = new SortedSet<int>(Enumerable.Range(0, 16).Concat(Enumerable.Range(data.Length - 16, 16)));
        for (var n = 0; n < data.Length; n += Math.Max(1, data.Length / 128))
        {
            lengths.Add(n);
        }

        foreach (var field in seed.KnownFields)
        {
            foreach (var edge in new[] { field.Offset, field.Offset + field.Size })
            {
                lengths.UnionWith([edge - 1, edge, edge + 1]);
            }
        }

        foreach (var n in lengths.Where(n => n >= 0 && n < data.Length))
        {
            yield return new Mutation($"truncated to {n} of {data.Length} bytes", data[..n]);
        }

        yield return new Mutation("1 zero byte appended", [.. data, 0]);
        yield return new Mutation("1 0xff byte appended", [.. data, 0xFF]);
        yield return new Mutation("4096 zero bytes appended", [.. data, .. new byte[4096]]);

        foreach (var field in seed.KnownFields.Where(f => f.Offset + f.Size <= data.Length))
        {
            var original = ReadField(data, field);
            var max = field.Size >= 8 ? ulong.MaxValue : (1UL << (8 * field.Size)) - 1;
            var rest = (ulong)(data.Length - field.Offset - field.Size);
            ulong[] values = [0, 1, max, max - 1, original - 1, original + 1, original * 2, rest, rest + 1, (ulong)data.Length, 0x7FFFFFFF, 0x80000000];
            foreach (var value in values.Select(v => v & max).Distinct().Where(v => v != original))
            {
                yield return SetField(data, field, value);
            }
        }
    }

    /// <summary>A random byte-level or wire-field mutation; one in five stacks two or three.</summary>
    public static Mutation Bytes(Random rng, FuzzSeed seed)
    {
        var count = rng.Next(5) == 0 ? rng.Next(2, 4) : 1;
        var mutation = new Mutation("", seed.Data);
        for (var i = 0; i < count; i++)
        {
            var next = OneByteMutation(rng, seed with { Data = mutation.Data });
            mutation = new Mutation(mutation.Description.Length == 0 ? next.Description : $"{mutation.Description}, then {next.Description}", next.Data);
        }

        return mutation;
    }

    /// <summary>A mutation of DER: a TLV's length (0, ±1, indefinite, 4 GiB, non-minimal), tag, content or count; else byte-level.</summary>
    public static Mutation Der(Random rng, FuzzSeed seed)
    {
        var nodes = Tlvs(seed.Data);
        if (nodes.Count == 0 || rng.Next(4) == 0)
        {
            return Bytes(rng, seed);
        }

        var data = seed.Data;
        var node = nodes[rng.Next(nodes.Count)];
        var header = $"TLV at 0x{node.Start:x} (tag 0x{data[node.Start]:x2}, {node.ContentLength} content bytes)";
        switch (rng.Next(7))
        {
            case 0:
            {
                byte[][] lengths =
                [
                    [0x00], [0x80], [0x7F], [0x81, 0x00], [0x84, 0xFF, 0xFF, 0xFF, 0xFF], [0x88, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                    EncodeLength(node.ContentLength + 1), EncodeLength(Math.Max(0, node.ContentLength - 1)), EncodeLength(data.Length),
                    [0x82, (byte)(node.ContentLength >> 8), (byte)node.ContentLength],
                ];
                var length = lengths[rng.Next(lengths.Length)];
                return new Mutation($"{header}: length written as {Convert.ToHexString(length)}",
                    [.. data[..node.LengthOffset], .. length, .. data[node.ContentStart..]]);
            }

            case 1:
            {
                byte[][] tags = [[0x01], [0x02], [0x03], [0x04], [0x05], [0x06], [0x0A], [0x0C], [0x13], [0x16], [0x17], [0x18], [0x30], [0x31], [0xA0], [0x80], [0x1F, 0x81, 0x00], [0x00]];
                var tag = tags[rng.Next(tags.Length)];
                return new Mutation($"{header}: tag replaced by {Convert.ToHexString(tag)}", [.. data[..node.Start], .. tag, .. data[node.LengthOffset..]]);
            }

            case 2:
                return new Mutation($"{header}: removed", [.. data[..node.Start], .. data[node.End..]]);

            case 3:
            {
                var copies = rng.Next(2) == 0 ? 1 : rng.Next(2, 40);
                var repeated = Enumerable.Repeat(data[node.Start..node.End], copies).SelectMany(b => b);
                return new Mutation($"{header}: repeated {copies} more time(s)", [.. data[..node.End], .. repeated, .. data[node.End..]]);
            }

            case 4:
            {
                byte[][] contents = [[], [0x00], [0xFF], [0x80], [0x00, 0x00], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], [0x01, .. new byte[16]], [0x00, 0xFF], [0x2A, 0x86, 0x48, 0x86, 0xF7]];
                var content = contents[rng.Next(contents.Length)];
                return new Mutation($"{header}: content replaced by {Convert.ToHexString(content)}",
                    [.. data[..node.LengthOffset], .. EncodeLength(content.Length), .. content, .. data[node.End..]]);
            }

            case 5:
            {
                var keep = node.ContentLength == 0 ? 0 : rng.Next(node.ContentLength);
                return new Mutation($"{header}: content cut to {keep} bytes, length kept", [.. data[..(node.ContentStart + keep)], .. data[node.End..]]);
            }

            default:
                return new Mutation($"{header}: whole input cut inside it", data[..rng.Next(node.Start, node.End)]);
        }
    }

    /// <summary>
    /// A mutation of PEM text: its blocks' DER (through <see cref="Der"/>), base64 and armour (labels, END lines, blocks
    /// repeated past any limit, URL-encoding, NULs), or the text byte by byte.
    /// </summary>
    public static Mutation Pem(Random rng, FuzzSeed seed)
    {
        var text = Encoding.ASCII.GetString(seed.Data);
        var blocks = PemBlocks(text);
        if (blocks.Count == 0 || rng.Next(6) == 0)
        {
            return Bytes(rng, seed);
        }

        var (start, end, label, der) = blocks[rng.Next(blocks.Count)];
        string Replace(string block) => text[..start] + block + text[end..];
        string Armour(string l, byte[] d) => $"-----BEGIN {l}-----\n{Convert.ToBase64String(d, Base64FormattingOptions.InsertLineBreaks)}\n-----END {l}-----";
        var where = $"PEM block {label} at {start}";
        switch (rng.Next(8))
        {
            case 0:
            case 1:
            case 2:
            {
                var inner = Der(rng, new FuzzSeed(seed.Name, der));
                return new Mutation($"{where}: DER {inner.Description}", Encoding.ASCII.GetBytes(Replace(Armour(label, inner.Data))));
            }

            case 3:
            {
                string[] labels = ["CERTIFICATE", "X509 CRL", "PUBLIC KEY", "", "CERTIFICATE\0", "certificate"];
                var other = labels[rng.Next(labels.Length)];
                return new Mutation($"{where}: label {other}", Encoding.ASCII.GetBytes(Replace(Armour(other, der))));
            }

            case 4:
            {
                var block = text[start..end];
                var copies = rng.Next(2, 20);
                return new Mutation($"{where}: block repeated {copies} times", Encoding.ASCII.GetBytes(Replace(string.Join("\n", Enumerable.Repeat(block, copies)))));
            }

            case 5:
            {
                var block = text[start..end];
                var cut = block.LastIndexOf("-----END", StringComparison.Ordinal);
                return new Mutation($"{where}: END line removed", Encoding.ASCII.GetBytes(Replace(block[..cut])));
            }

            case 6:
            {
                var body = text[start..end].ToCharArray();
                var at = rng.Next(body.Length);
                char[] junk = ['%', '!', '=', '\0', '-', '*', 'é'];
                body[at] = junk[rng.Next(junk.Length)];
                return new Mutation($"{where}: character {at} of the block set to U+{(int)body[at]:X4}", Encoding.Latin1.GetBytes(Replace(new string(body))));
            }

            default:
                return new Mutation($"{where}: URL-encoded", Encoding.ASCII.GetBytes(Replace(Uri.EscapeDataString(text[start..end]))));
        }
    }

    /// <summary>
    /// A mutation of JSON: one value removed, repeated in its array, set to null, retyped, made huge (64 KiB strings, 10,000-element arrays,
    /// numbers past 64 bits, nesting past any depth limit), a hex or date string bent, a key duplicated — descending
    /// into strings that hold JSON themselves — or the text byte by byte.
    /// </summary>
    public static Mutation Json(Random rng, FuzzSeed seed)
    {
        if (rng.Next(8) == 0)
        {
            return Bytes(rng, seed);
        }

        var (text, description) = MutateJsonText(rng, Encoding.UTF8.GetString(seed.Data), 0);
        return new Mutation(description, Encoding.UTF8.GetBytes(text));
    }

    /// <summary>Reads a little-endian field.</summary>
    public static ulong ReadField(byte[] data, WireField field) => (field.Size, field.BigEndian) switch
    {
        (1, _) => data[field.Offset],
        (2, false) => BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(field.Offset)),
        (2, true) => BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(field.Offset)),
        (4, false) => BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(field.Offset)),
        (4, true) => BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(field.Offset)),
        (_, false) => BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(field.Offset)),
        _ => BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(field.Offset)),
    };

    /// <summary>A copy of <paramref name="data"/> with <paramref name="field"/> set to <paramref name="value"/>.</summary>
    public static Mutation SetField(byte[] data, WireField field, ulong value)
    {
        var copy = data.ToArray();
        var span = copy.AsSpan(field.Offset);
        switch (field.Size, field.BigEndian)
        {
            case (1, _): span[0] = (byte)value; break;
            case (2, false): BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)value); break;
            case (2, true): BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)value); break;
            case (4, false): BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)value); break;
            case (4, true): BinaryPrimitives.WriteUInt32BigEndian(span, (uint)value); break;
            case (_, false): BinaryPrimitives.WriteUInt64LittleEndian(span, value); break;
            default: BinaryPrimitives.WriteUInt64BigEndian(span, value); break;
        }

        return new Mutation($"{field.Name} ({(field.BigEndian ? "big-endian " : "")}u{8 * field.Size} at 0x{field.Offset:x}) set to 0x{value:x} (was 0x{ReadField(data, field):x})", copy);
    }

    private static Mutation OneByteMutation(Random rng, FuzzSeed seed)
    {
        var data = seed.Data;
        var fields = seed.KnownFields.Where(f => f.Offset + f.Size <= data.Length).ToList();
        var kind = rng.Next(fields.Count > 0 ? 9 : 8);
        if (data.Length == 0 && kind is not (3 or 4))
        {
            kind = 3;
        }

        switch (kind)
        {
            case 0:
            {
                var copy = data.ToArray();
                var flips = rng.Next(1, 9);
                var at = new List<string>();
                for (var i = 0; i < flips; i++)
                {
                    var position = rng.Next(copy.Length);
                    var bit = rng.Next(8);
                    copy[position] ^= (byte)(1 << bit);
                    at.Add($"0x{position:x}.{bit}");
                }

                return new Mutation($"bits flipped at {string.Join(" ", at)}", copy);
            }

            case 1:
            {
                var copy = data.ToArray();
                var at = new List<string>();
                for (var i = rng.Next(1, 5); i > 0; i--)
                {
                    var position = rng.Next(copy.Length);
                    copy[position] = rng.Next(2) == 0 ? Interesting[rng.Next(Interesting.Length)] : (byte)rng.Next(256);
                    at.Add($"0x{position:x}=0x{copy[position]:x2}");
                }

                return new Mutation($"bytes set: {string.Join(" ", at)}", copy);
            }

            case 2:
            {
                int[] classes = [0, 1, 2, 3, 4, rng.Next(Math.Min(64, data.Length) + 1), rng.Next(data.Length + 1), data.Length - 1, data.Length - 2, data.Length / 2];
                var length = Math.Clamp(classes[rng.Next(classes.Length)], 0, data.Length);
                return new Mutation($"truncated to {length} of {data.Length} bytes", data[..length]);
            }

            case 3:
            {
                byte[][] tails = [[0x00], [0xFF], RandomBytes(rng, rng.Next(1, 17)), new byte[4096], Enumerable.Repeat((byte)0xFF, 65536).ToArray(), data];
                var tail = tails[rng.Next(tails.Length)];
                return new Mutation($"{tail.Length} bytes appended", [.. data, .. tail]);
            }

            case 4:
            {
                var at = rng.Next(data.Length + 1);
                var chunk = rng.Next(2) == 0 ? new byte[rng.Next(1, 65)] : RandomBytes(rng, rng.Next(1, 65));
                return new Mutation($"{chunk.Length} bytes inserted at 0x{at:x}", [.. data[..at], .. chunk, .. data[at..]]);
            }

            case 5:
            {
                var at = rng.Next(data.Length);
                var length = rng.Next(1, Math.Min(256, data.Length - at) + 1);
                return new Mutation($"{length} bytes deleted at 0x{at:x}", [.. data[..at], .. data[(at + length)..]]);
            }

            case 6:
            {
                var from = rng.Next(data.Length);
                var length = rng.Next(1, Math.Min(512, data.Length - from) + 1);
                var to = rng.Next(data.Length + 1);
                return new Mutation($"bytes 0x{from:x}+{length} copied to 0x{to:x}", [.. data[..to], .. data[from..(from + length)], .. data[to..]]);
            }

            case 7:
            {
                var copy = data.ToArray();
                var at = rng.Next(copy.Length);
                var length = rng.Next(1, Math.Min(128, copy.Length - at) + 1);
                var fill = rng.Next(2) == 0 ? (byte)0 : (byte)0xFF;
                copy.AsSpan(at, length).Fill(fill);
                return new Mutation($"bytes 0x{at:x}+{length} filled with 0x{fill:x2}", copy);
            }

            default:
            {
                var field = fields[rng.Next(fields.Count)];
                var original = ReadField(data, field);
                var max = field.Size >= 8 ? ulong.MaxValue : (1UL << (8 * field.Size)) - 1;
                var rest = (ulong)(data.Length - field.Offset - field.Size);
                ulong[] values = [0, 1, max, max - 1, original - 1, original + 1, original * 2, rest, rest + 1, (ulong)rng.NextInt64(), 0x80000000, 0x7FFFFFFF, 0x8000];
                return SetField(data, field, values[rng.Next(values.Length)] & max);
            }
        }
    }

    private static byte[] RandomBytes(Random rng, int length)
    {
        var bytes = new byte[length];
        rng.NextBytes(bytes);
        return bytes;
    }

    private readonly record struct Tlv(int Start, int LengthOffset, int ContentStart, int ContentLength)
    {
        public int End => ContentStart + ContentLength;
    }

    /// <summary>Every TLV of a DER input, descending into constructed values and into OCTET/BIT STRINGs that hold DER.</summary>
    private static List<Tlv> Tlvs(byte[] data)
    {
        var nodes = new List<Tlv>();
        Walk(data, 0, data.Length, nodes, 0);
        return nodes;
    }

    private static void Walk(byte[] data, int start, int end, List<Tlv> nodes, int depth)
    {
        var at = start;
        while (at < end && depth < 32 && nodes.Count < 4096)
        {
            var tagStart = at;
            var tag = data[at++];
            if ((tag & 0x1F) == 0x1F)
            {
                while (at < end && (data[at] & 0x80) != 0)
                {
                    at++;
                }

                at++;
            }

            if (at >= end)
            {
                return;
            }

            var lengthOffset = at;
            int length = data[at++];
            if (length >= 0x80)
            {
                var octets = length & 0x7F;
                if (octets is 0 or > 3 || at + octets > end)
                {
                    return;
                }

                length = 0;
                for (var i = 0; i < octets; i++)
                {
                    length = (length << 8) | data[at++];
                }
            }

            if (at + length > end)
            {
                return;
            }

            nodes.Add(new Tlv(tagStart, lengthOffset, at, length));
            if ((tag & 0x20) != 0)
            {
                Walk(data, at, at + length, nodes, depth + 1);
            }
            else if (tag == 0x04 && length > 1 && data[at] is 0x30 or 0x04 or 0x02)
            {
                Walk(data, at, at + length, nodes, depth + 1);
            }
            else if (tag == 0x03 && length > 2 && data[at] == 0 && data[at + 1] == 0x30)
            {
                Walk(data, at + 1, at + length, nodes, depth + 1);
            }

            at += length;
        }
    }

    private static byte[] EncodeLength(int length) => length switch
    {
        < 0x80 => [(byte)length],
        <= 0xFF => [0x81, (byte)length],
        <= 0xFFFF => [0x82, (byte)(length >> 8), (byte)length],
        _ => [0x84, (byte)(length >> 24), (byte)(length >> 16), (byte)(length >> 8), (byte)length],
    };

    private static List<(int Start, int End, string Label, byte[] Der)> PemBlocks(string text)
    {
        var blocks = new List<(int, int, string, byte[])>();
        var offset = 0;
        while (System.Security.Cryptography.PemEncoding.TryFind(text.AsSpan(offset), out var fields))
        {
            var (s, length) = fields.Location.GetOffsetAndLength(text.Length - offset);
            var span = text.AsSpan(offset);
            blocks.Add((offset + s, offset + s + length, span[fields.Label].ToString(), Convert.FromBase64String(span[fields.Base64Data].ToString())));
            offset += s + length;
        }

        return blocks;
    }

    private const string Placeholder = "\u0001fuzz-placeholder\u0001";

    private static (string Text, string Description) MutateJsonText(Random rng, string text, int depth)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException)
        {
            return (text, "not JSON, left as is");
        }

        var values = new List<(JsonNode? Parent, string? Key, int Index, JsonNode? Node, string Path)>();
        Collect(root, null, null, -1, "$", values);
        var (parent, key, index, node, path) = values[rng.Next(values.Count)];

        // Strings that carry JSON themselves (dcap-qvl's tcb_info, qe_identity) are fuzzed inside half the time.
        if (depth < 2 && node is JsonValue v && v.TryGetValue<string>(out var inner) && inner.TrimStart().StartsWith('{') && rng.Next(2) == 0)
        {
            var (mutated, what) = MutateJsonText(rng, inner, depth + 1);
            Replace(ref root, parent, key, index, JsonValue.Create(mutated));
            return (Serialize(root), $"inside the JSON string at {path}: {what}");
        }

        string description;
        JsonNode? replacement;
        var choice = rng.Next(12);
        if (choice == 0 && parent is not null)
        {
            if (parent is JsonObject o)
            {
                o.Remove(key!);
            }
            else
            {
                ((JsonArray)parent).RemoveAt(index);
            }

            return (Serialize(root), $"{path} removed");
        }

        if (choice == 1 && node is JsonObject obj && obj.Count > 0)
        {
            // Duplicate the first property textually: no DOM can hold a duplicate key.
            var first = obj.First();
            var duplicate = $"{JsonSerializer.Serialize(first.Key)}:{first.Value?.ToJsonString() ?? "null"},";
            var objectText = obj.ToJsonString();
            var withDuplicate = "{" + duplicate + objectText[1..];
            if (parent is null)
            {
                return (withDuplicate, $"{path}.{first.Key} duplicated");
            }

            Replace(ref root, parent, key, index, JsonValue.Create(Placeholder));
            return (Serialize(root).Replace(JsonSerializer.Serialize(Placeholder), withDuplicate, StringComparison.Ordinal), $"{path}.{first.Key} duplicated");
        }

        if (choice == 2 && parent is JsonArray siblings)
        {
            // One element more (or many more) than the format's count: arrays of fixed length are read by index.
            var copies = rng.Next(2) == 0 ? 1 : rng.Next(2, 64);
            for (var i = 0; i < copies; i++)
            {
                siblings.Insert(index, node?.DeepClone());
            }

            return (Serialize(root), $"{path} repeated {copies} more time(s) in its array");
        }

        (description, replacement) = rng.Next(22) switch
        {
            0 => ("null", null),
            1 => ("\"\"", JsonValue.Create("")),
            2 => ("\"x\"", JsonValue.Create("x")),
            3 => ("a 65536-character string", JsonValue.Create(new string('A', 65536))),
            4 => ("0", JsonValue.Create(0)),
            5 => ("-1", JsonValue.Create(-1)),
            6 => ("1e400", JsonNode.Parse("1e400")),
            7 => ("18446744073709551616", JsonNode.Parse("18446744073709551616")),
            8 => ("2147483648", JsonValue.Create(2147483648L)),
            9 => ("1.5", JsonValue.Create(1.5)),
            10 => ("true", JsonValue.Create(true)),
            11 => ("[]", new JsonArray()),
            12 => ("{}", new JsonObject()),
            13 => ("nested 300 deep", JsonNode.Parse(new string('[', 300) + new string(']', 300), documentOptions: new JsonDocumentOptions { MaxDepth = 512 })),
            14 => Copies(node),
            15 => ("wrapped in an array", new JsonArray(node?.DeepClone())),
            16 => ("its number as a string", JsonValue.Create(node?.ToJsonString().Trim('"'))),
            17 => ("an odd-length hex string", JsonValue.Create("abc")),
            18 => ("a non-hex string of hex length", JsonValue.Create(BendHex(node))),
            19 => ("a date past the calendar", JsonValue.Create("2025-13-45T25:61:61Z")),
            20 => ("year 9999 with an offset", JsonValue.Create("9999-12-31T23:59:59-14:00")),
            _ => ("year 1 with an offset", JsonValue.Create("0001-01-01T00:00:00+14:00")),
        };

        Replace(ref root, parent, key, index, replacement);
        return (Serialize(root), $"{path} set to {description}");
    }

    /// <summary>An array of as many copies as fit in about 256 KB: 10,000 of a small value, fewer of a large one.</summary>
    private static (string, JsonNode?) Copies(JsonNode? node)
    {
        var count = Math.Clamp(256_000 / Math.Max(1, node?.ToJsonString().Length ?? 4), 2, 10_000);
        return ($"an array of {count} copies", new JsonArray([.. Enumerable.Range(0, count).Select(_ => node?.DeepClone())]));
    }

    private static string BendHex(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? "g" + s[1..] : "zz";

    private static void Collect(JsonNode? node, JsonNode? parent, string? key, int index, string path, List<(JsonNode?, string?, int, JsonNode?, string)> values)
    {
        values.Add((parent, key, index, node, path));
        switch (node)
        {
            case JsonObject o:
                foreach (var (k, child) in o.ToList())
                {
                    Collect(child, o, k, -1, $"{path}.{k}", values);
                }

                break;
            case JsonArray a:
                for (var i = 0; i < a.Count; i++)
                {
                    Collect(a[i], a, null, i, $"{path}[{i}]", values);
                }

                break;
        }
    }

    private static void Replace(ref JsonNode? root, JsonNode? parent, string? key, int index, JsonNode? replacement)
    {
        switch (parent)
        {
            case null: root = replacement; break;
            case JsonObject o: o[key!] = replacement; break;
            case JsonArray a: a[index] = replacement; break;
        }
    }

    private static string Serialize(JsonNode? root) =>
        root?.ToJsonString(new JsonSerializerOptions { MaxDepth = 1024, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) ?? "null";
}
