using System.Text;
using Morphisms.Attestation;

namespace Morphisms.Cli.Commands;

/// <summary>
/// Reads an input the user names (a file, or standard input), as text or bytes, up to a cap.
/// <see cref="File.ReadAllText(string)"/> and <see cref="File.ReadAllBytes(string)"/> read until the end, so
/// <c>--data-file /dev/zero</c> (or a multi-gigabyte file named by mistake) ran the command out of memory and crashed
/// it; here it is an <see cref="IOException"/> naming the input, which the commands already turn into a usage error
/// (exit 2).
/// </summary>
/// <remarks>
/// Pipes stay allowed (standard input, <c>--key-file &lt;(…)</c>), so the size is learnt by reading: at most one
/// character (or byte) over the cap is read, from any kind of file.
/// </remarks>
internal static class BoundedInput
{
    /// <summary>Secret data, policies, function specs: the KMS's default request body limit.</summary>
    public const int DataLimit = 1024 * 1024;

    /// <summary>Tokens and unseal key shares (255 shares of a 32-byte key fill about 23 KiB).</summary>
    public const int SecretLimit = 64 * 1024;

    /// <summary>
    /// Evidence, certificates and CRLs for <c>morph evidence</c>, a SIGSTRUCT for <c>morph measure</c>: a few KiB each
    /// (a quote with its PCK chain is about 5 KiB, a SIGSTRUCT 1 808 bytes), so 4 MiB is ample.
    /// </summary>
    public const int EvidenceLimit = 4 * 1024 * 1024;

    /// <summary>
    /// A <c>morph invoke --data @FILE</c> body, held in memory to be sent. The SNI gateway and the instance's TLS
    /// terminator relay bytes without a body limit of their own (the app may set one), so this only keeps a file named
    /// by mistake from exhausting memory.
    /// </summary>
    public const int BodyLimit = 64 * 1024 * 1024;

    /// <summary>The text of the file at <paramref name="path"/> (UTF-8 unless a byte order mark says otherwise).</summary>
    /// <exception cref="IOException">The file cannot be read, is a directory, or holds more than <paramref name="limit"/> characters.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be opened.</exception>
    public static string ReadFile(string path, int limit)
    {
        using var reader = new StreamReader(BoundedFile.OpenRead(path), Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return Read(reader, path, limit);
    }

    /// <summary>The bytes of the file at <paramref name="path"/>.</summary>
    /// <exception cref="IOException">The file cannot be read, is a directory, or holds more than <paramref name="limit"/> bytes.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be opened.</exception>
    public static byte[] ReadFileBytes(string path, int limit) =>
        BoundedFile.TryReadAllBytes(path, limit, out var bytes) ? bytes : throw new IOException($"{path} is larger than {Describe(limit)}");

    /// <summary>The text of <paramref name="reader"/>, named <paramref name="name"/> in the error.</summary>
    /// <exception cref="IOException">It holds more than <paramref name="limit"/> characters.</exception>
    public static string Read(TextReader reader, string name, int limit)
    {
        var buffer = new char[Math.Min(limit + 1, 64 * 1024)];
        var text = new StringBuilder();
        int read;
        while ((read = reader.Read(buffer, 0, Math.Min(buffer.Length, limit + 1 - text.Length))) > 0)
        {
            text.Append(buffer, 0, read);
            if (text.Length > limit)
            {
                throw new IOException($"{name} is larger than {Describe(limit)}");
            }
        }

        return text.ToString();
    }

    /// <summary>A limit as the errors name it (<c>64 KiB</c>, <c>1 MiB</c>).</summary>
    internal static string Describe(int limit) => limit % (1024 * 1024) == 0 ? $"{limit / (1024 * 1024)} MiB" : $"{limit / 1024} KiB";
}
