namespace Morphisms.Kms.AutoUnseal;

/// <summary>
/// Where the PKCS#11 seal finds its key: the module, the token (by label or slot id), the AES key's label, and
/// where the user PIN comes from. The PIN is never an option value itself, so it never reaches argv, a process
/// listing or a log: it is read from an environment variable or a file each time the token is opened.
/// </summary>
public sealed record Pkcs11SealOptions
{
    /// <summary>The PKCS#11 module (<c>/usr/lib/softhsm/libsofthsm2.so</c>, a vendor's <c>.so</c>).</summary>
    public required string LibraryPath { get; init; }

    /// <summary>The token's label; set this or <see cref="SlotId"/>.</summary>
    public string? TokenLabel { get; init; }

    /// <summary>The slot id; set this or <see cref="TokenLabel"/>.</summary>
    public ulong? SlotId { get; init; }

    /// <summary>The label (<c>CKA_LABEL</c>) of the AES-256 wrapping key; created on first use if absent.</summary>
    public required string KeyLabel { get; init; }

    /// <summary>The environment variable holding the user PIN; set this or <see cref="PinFile"/>.</summary>
    public string? PinEnvironmentVariable { get; init; }

    /// <summary>A file holding the user PIN (one line; a trailing newline is ignored); set this or <see cref="PinEnvironmentVariable"/>.</summary>
    public string? PinFile { get; init; }

    /// <summary>The first problem with these options, or null.</summary>
    public string? Problem() =>
        string.IsNullOrWhiteSpace(LibraryPath) ? "the PKCS#11 library path is required"
        : (TokenLabel is null) == (SlotId is null) ? "name the PKCS#11 token by exactly one of token label or slot id"
        : TokenLabel is { Length: 0 or > 32 } ? "the PKCS#11 token label must be 1-32 characters"
        : string.IsNullOrEmpty(KeyLabel) || KeyLabel.Length > 128 ? "the PKCS#11 key label must be 1-128 characters"
        : (PinEnvironmentVariable is null) == (PinFile is null) ? "give the PKCS#11 PIN by exactly one of an environment variable or a file (never on the command line)"
        : null;

    /// <summary>Reads the PIN now.</summary>
    /// <exception cref="AutoUnsealException">The variable is unset or the file unreadable.</exception>
    internal string ReadPin()
    {
        if (PinEnvironmentVariable is { } variable)
        {
            return Environment.GetEnvironmentVariable(variable) is { Length: > 0 } pin
                ? pin
                : throw new AutoUnsealException($"the PKCS#11 PIN variable {variable} is not set");
        }

        try
        {
            var pin = File.ReadAllText(PinFile!).TrimEnd('\r', '\n');
            return pin.Length > 0 ? pin : throw new AutoUnsealException($"the PKCS#11 PIN file {PinFile} is empty");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AutoUnsealException($"the PKCS#11 PIN file {PinFile} cannot be read: {e.Message}");
        }
    }
}
