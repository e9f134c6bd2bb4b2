namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// A KV v2 path as users write it (<c>secret/app/db</c>), split into the mount (<c>secret/</c>) and the key
/// (<c>app/db</c>). The mount is asked of the KMS, as Vault's CLI does, because mounts may be nested paths.
/// </summary>
internal sealed record KvPath(string Mount, string Key)
{
    /// <summary>The API path of <paramref name="section"/> (<c>data</c>, <c>metadata</c>, <c>delete</c>) for this key.</summary>
    public string Api(string section) => Mount + section + "/" + string.Join('/', Key.Split('/').Select(Uri.EscapeDataString));

    /// <summary>Resolves <paramref name="path"/> against the KMS's mounts.</summary>
    /// <exception cref="KmsCliException">The path is empty or no KV v2 mount serves it.</exception>
    public static async Task<KvPath> ResolveAsync(KmsHttp kms, string path, bool allowEmptyKey, CancellationToken ct)
    {
        var trimmed = path.Trim('/');
        if (trimmed.Length == 0 || trimmed.Split('/').Any(s => s is "" or "." or ".."))
        {
            throw KmsCliException.Usage($"not a KV path: '{path}' (use MOUNT/KEY, e.g. secret/app)");
        }

        var reply = await kms.SendAsync("GET", "sys/internal/ui/mounts/" + string.Join('/', trimmed.Split('/').Select(Uri.EscapeDataString)), null, ct);
        var mount = reply.Data["path"]?.ToString() ?? throw new KmsCliException(ExitCodes.Rejected, $"no mount serves {path}");
        if (reply.Data["type"]?.ToString() != "kv")
        {
            throw KmsCliException.Usage($"{mount} is not a KV v2 mount");
        }

        var key = (trimmed + "/").Length > mount.Length ? trimmed[mount.Length..] : "";
        return key.Length == 0 && !allowEmptyKey ? throw KmsCliException.Usage($"'{path}' names the mount {mount}, not a key in it") : new KvPath(mount, key);
    }
}
