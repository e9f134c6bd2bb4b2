using System.Text.Json;
using System.Text.Json.Serialization;

namespace Morphisms.Kms.Seal;

/// <summary>
/// Insecure development mode: the single unseal key and the root token are kept in a plain file (or in memory for
/// <c>inmem</c> storage) and the KMS unseals itself at start. Anyone who can read that file owns the KMS.
/// </summary>
internal static class DevSeal
{
    /// <summary>Initialises if needed, then unseals; returns the credentials.</summary>
    public static async Task<KmsDevCredentials> StartAsync(KmsCore core, string? keyFile, CancellationToken ct)
    {
        KmsDevCredentials credentials;
        if (!core.Initialized)
        {
            var result = await core.InitializeAsync(1, 1, ct).ConfigureAwait(false);
            credentials = new KmsDevCredentials(Convert.ToBase64String(result.Keys[0]), result.RootToken, keyFile);
            if (keyFile is not null)
            {
                var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }

                await using var file = new FileStream(keyFile, options);
                await JsonSerializer.SerializeAsync(file, new DevKeyFile(credentials.UnsealKey, credentials.RootToken), cancellationToken: ct).ConfigureAwait(false);
            }
        }
        else
        {
            if (keyFile is null || !File.Exists(keyFile))
            {
                throw new InvalidOperationException($"dev mode: the storage is already initialised but the dev key file '{keyFile}' is missing; unseal it with its real keys instead");
            }

            var stored = JsonSerializer.Deserialize<DevKeyFile>(await File.ReadAllBytesAsync(keyFile, ct).ConfigureAwait(false))
                ?? throw new InvalidOperationException($"dev mode: the dev key file '{keyFile}' is empty");
            credentials = new KmsDevCredentials(stored.UnsealKey, stored.RootToken, keyFile);
        }

        await core.SubmitUnsealKeyAsync(Convert.FromBase64String(credentials.UnsealKey), ct).ConfigureAwait(false);
        return credentials;
    }

    private sealed record DevKeyFile(
        [property: JsonPropertyName("unseal_key_base64")] string UnsealKey,
        [property: JsonPropertyName("root_token")] string RootToken);
}
