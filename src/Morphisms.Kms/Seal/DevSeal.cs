using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Morphisms.Attestation;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Seal;

/// <summary>
/// Insecure development mode: the single unseal key and the root token are kept in a plain file (or in memory for
/// <c>inmem</c> storage) and the KMS unseals itself at start. Anyone who can read that file owns the KMS.
/// </summary>
internal static class DevSeal
{
    private const string StartAfresh = "restore it, or remove it and the storage beside it to start a new dev KMS (its secrets are lost)";

    /// <summary>Initialises if needed, then unseals; returns the credentials.</summary>
    public static async Task<KmsDevCredentials> StartAsync(KmsCore core, string? keyFile, CancellationToken ct)
    {
        KmsDevCredentials credentials;
        if (!core.Initialized)
        {
            var result = await core.InitializeAsync(1, 1, unseal: false, ct).ConfigureAwait(false);
            credentials = new KmsDevCredentials(Convert.ToBase64String(result.Keys[0]), result.RootToken, keyFile);
            if (keyFile is not null)
            {
                Write(keyFile, new DevKeyFile(credentials.UnsealKey, credentials.RootToken));
            }
        }
        else
        {
            if (keyFile is null || !File.Exists(keyFile))
            {
                throw new InvalidOperationException($"dev mode: the storage is already initialised but the dev key file '{keyFile}' is missing; unseal it with its real keys instead");
            }

            credentials = Read(keyFile, await File.ReadAllBytesAsync(keyFile, ct).ConfigureAwait(false));
        }

        try
        {
            await core.SubmitUnsealKeyAsync(Convert.FromBase64String(credentials.UnsealKey), ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is FormatException or KmsException)
        {
            // Not base64, not a key, or another storage's: reported naming the file, as a missing one is.
            throw new InvalidOperationException($"dev mode: the dev key file '{keyFile}' does not unseal this storage ({e.Message}); {StartAfresh}", e);
        }

        return credentials;
    }

    private static KmsDevCredentials Read(string keyFile, byte[] content)
    {
        DevKeyFile? stored;
        try
        {
            stored = JsonSerializer.Deserialize<DevKeyFile>(content);
        }
        catch (JsonException e)
        {
            // Truncated or hand-edited: reported naming the file, as a missing one is.
            throw new InvalidOperationException($"dev mode: the dev key file '{keyFile}' is not JSON ({e.Message}); {StartAfresh}", e);
        }

        if (stored is null || stored.UnsealKey is null || stored.RootToken is null)
        {
            throw new InvalidOperationException($"dev mode: the dev key file '{keyFile}' is empty or lacks unseal_key_base64 or root_token; {StartAfresh}");
        }

        return new KmsDevCredentials(stored.UnsealKey, stored.RootToken, keyFile);
    }

    /// <summary>
    /// Writes the key file through <see cref="PrivateFile"/> (a fresh 0600 file flushed to disk, then renamed over
    /// <paramref name="path"/>), never cancellable: the storage is already initialised with this key, so a crash or a
    /// Ctrl-C must leave the whole file or none.
    /// </summary>
    private static void Write(string path, DevKeyFile content) =>
        PrivateFile.Write(path, JsonSerializer.SerializeToUtf8Bytes(content));

    private sealed record DevKeyFile(
        [property: JsonPropertyName("unseal_key_base64")] string UnsealKey,
        [property: JsonPropertyName("root_token")] string RootToken)
    {
        // A record's ToString prints every property: the unseal key and root token stay out of it.
        private bool PrintMembers(StringBuilder builder)
        {
            builder.Append("UnsealKey = [redacted], RootToken = [redacted]");
            return true;
        }
    }
}
