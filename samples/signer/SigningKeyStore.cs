using System.Security.Cryptography;
using System.Text;
using NSec.Cryptography;

namespace Morphisms.Samples.Signer;

/// <summary>The key in use, its raw public key and where it came from.</summary>
internal sealed record SigningIdentity(Key Key, byte[] PublicKey, string Source)
{
    public string PublicKeyBase64 { get; } = Convert.ToBase64String(PublicKey);
}

/// <summary>
/// Holds the signing key: read from <c>$MORPH_SECRETS_DIR/signing-key</c> (written by <c>morph-init</c> from the KMS
/// secret bundle) and re-read on <see cref="Reload"/> (SIGHUP) without a restart, or generated at start when there is
/// no secrets directory (run outside morph-init) or the function opted in (<c>SIGNER_GENERATE_KEY=true</c>).
/// Requests read <see cref="Current"/> once, so a swap never mixes two keys in one response.
/// </summary>
internal sealed class SigningKeyStore
{
    /// <summary>The file name inside the secrets directory.</summary>
    public const string FileName = "signing-key";

    // A PEM PKCS#8 key is a few hundred bytes; anything this big is not a key.
    private const int MaxFileBytes = 16 * 1024;

    private static readonly SignatureAlgorithm Ed25519 = SignatureAlgorithm.Ed25519;
    private readonly object _reloadLock = new();
    private volatile SigningIdentity _current;

    private SigningKeyStore(string? keyFile, SigningIdentity initial)
    {
        KeyFile = keyFile;
        _current = initial;
    }

    /// <summary>The key file watched, or null without <c>MORPH_SECRETS_DIR</c>.</summary>
    public string? KeyFile { get; }

    /// <summary>The key to sign with now.</summary>
    public SigningIdentity Current => _current;

    /// <summary>
    /// Uses the key file when it exists (an unreadable or malformed one is an error: a function configured with a
    /// key must not silently sign with another). Without one, a fresh key pair is generated only outside morph-init
    /// (no <paramref name="secretsDirectory"/>) or when <paramref name="generateIfMissing"/>: under morph-init a missing
    /// key means the secrets did not arrive (an empty bundle, or a directory the app cannot see), and signing with a
    /// random key would hide that behind answers no one can verify against the expected public key.
    /// </summary>
    /// <exception cref="FormatException">The key file is malformed.</exception>
    /// <exception cref="FileNotFoundException">The secrets directory has no key file and generating one was not asked for.</exception>
    public static SigningKeyStore Create(string? secretsDirectory, bool generateIfMissing = false)
    {
        var keyFile = string.IsNullOrEmpty(secretsDirectory) ? null : Path.Combine(secretsDirectory, FileName);
        if (keyFile is not null && !File.Exists(keyFile) && !generateIfMissing)
        {
            throw new FileNotFoundException(
                $"no {FileName} in {secretsDirectory}: the secret bundle has none, or its files do not reach this process; "
                + "put one in the bundle, or set SIGNER_GENERATE_KEY=true to sign with a key generated per instance", keyFile);
        }

        var initial = keyFile is not null && File.Exists(keyFile) ? Load(keyFile) : Generate();
        return new SigningKeyStore(keyFile, initial);
    }

    /// <summary>
    /// Re-reads the key file. A missing or malformed file keeps the current key (the reason is returned), so a bad
    /// secret version never takes a running function down.
    /// </summary>
    public (bool Changed, string Message) Reload()
    {
        lock (_reloadLock)
        {
            if (KeyFile is null)
            {
                return (false, "no MORPH_SECRETS_DIR: keeping the generated key");
            }

            if (!File.Exists(KeyFile))
            {
                return (false, $"{KeyFile} is absent: keeping the current key");
            }

            SigningIdentity next;
            try
            {
                next = Load(KeyFile);
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
            {
                return (false, $"{e.Message}: keeping the current key");
            }

            var previous = _current;
            if (previous.PublicKey.AsSpan().SequenceEqual(next.PublicKey))
            {
                next.Key.Dispose();
                return (false, "key unchanged");
            }

            // The previous key is not disposed: a request may still be signing with it. The GC frees it.
            _current = next;
            return (true, $"key replaced; public key {next.PublicKeyBase64}");
        }
    }

    /// <summary>
    /// Imports a key file. Accepted forms: the raw 32-byte Ed25519 seed; the seed as 64 hex digits or as base64
    /// (surrounding whitespace ignored); or a PKCS#8 PEM <c>-----BEGIN PRIVATE KEY-----</c> (as written by
    /// <c>openssl genpkey -algorithm ed25519</c>). Errors never include the file's content.
    /// </summary>
    /// <exception cref="FormatException">None of the accepted forms.</exception>
    private static readonly System.Buffers.SearchValues<byte> Base64Characters =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \t\r\n"u8);

    internal static Key Import(ReadOnlySpan<byte> content)
    {
        if (content.Length == Ed25519.PrivateKeySize)
        {
            // 32 printable characters are a text key of the wrong length (16 random bytes in hex, 24 in base64), not a
            // seed: a random seed is all base64 characters about once in 10^19. Taking them as a seed would sign with a
            // key its owner never meant.
            if (content.IndexOfAnyExcept(Base64Characters) < 0)
            {
                throw new FormatException(
                    "signing-key: 32 characters of text are not a key (64 hex digits or base64 of 32 bytes are); ship a raw seed through the bundle's {\"base64\": …} form");
            }

            return Key.Import(Ed25519, content, KeyBlobFormat.RawPrivateKey);
        }

        var text = content.Trim(" \t\r\n"u8);
        if (text.StartsWith("-----BEGIN PRIVATE KEY-----"u8))
        {
            return Key.TryImport(Ed25519, text, KeyBlobFormat.PkixPrivateKeyText, out var pemKey) && pemKey is not null
                ? pemKey
                : throw new FormatException("signing-key: PEM is not an Ed25519 PKCS#8 private key");
        }

        var seed = new byte[Ed25519.PrivateKeySize];
        try
        {
            var chars = Encoding.ASCII.GetString(text);
            if (!TryHex(chars, seed) && !(Convert.TryFromBase64String(chars, seed, out var written) && written == seed.Length))
            {
                throw new FormatException(
                    $"signing-key: {content.Length} bytes are not a raw 32-byte seed, 64 hex digits, base64 of 32 bytes or a PKCS#8 PEM");
            }

            return Key.Import(Ed25519, seed, KeyBlobFormat.RawPrivateKey);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    private static bool TryHex(string chars, Span<byte> seed) =>
        chars.Length == seed.Length * 2 && Convert.FromHexString(chars, seed, out _, out var written) == System.Buffers.OperationStatus.Done
        && written == seed.Length;

    private static SigningIdentity Load(string keyFile)
    {
        var content = ReadBounded(keyFile);
        try
        {
            var key = Import(content);
            return new SigningIdentity(key, key.PublicKey.Export(KeyBlobFormat.RawPublicKey), "secret");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(content);
        }
    }

    private static byte[] ReadBounded(string keyFile)
    {
        using var stream = new FileStream(keyFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 1);
        if (stream.Length > MaxFileBytes)
        {
            throw new FormatException($"signing-key: {stream.Length} bytes is too large for a key");
        }

        var content = new byte[stream.Length];
        stream.ReadExactly(content);
        return content;
    }

    private static SigningIdentity Generate()
    {
        var key = Key.Create(Ed25519);
        return new SigningIdentity(key, key.PublicKey.Export(KeyBlobFormat.RawPublicKey), "generated");
    }
}
