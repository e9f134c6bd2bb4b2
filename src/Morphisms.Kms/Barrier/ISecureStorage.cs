using System.Text.Json;

namespace Morphisms.Kms.Barrier;

/// <summary>Storage as the KMS's features see it: plaintext in and out, ciphertext on disk.</summary>
internal interface ISecureStorage
{
    /// <summary>Reads and decrypts the value at <paramref name="key"/>, or null when absent.</summary>
    Task<byte[]?> GetAsync(string key, CancellationToken ct = default);

    /// <summary>Encrypts and writes the value at <paramref name="key"/>.</summary>
    Task PutAsync(string key, byte[] value, CancellationToken ct = default);

    /// <summary>Deletes the value at <paramref name="key"/>.</summary>
    Task DeleteAsync(string key, CancellationToken ct = default);

    /// <summary>Lists immediate children, as <see cref="Storage.IPhysicalStorage.ListAsync"/>.</summary>
    Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken ct = default);

    /// <summary>Encrypts and writes all operations atomically (null value = delete).</summary>
    Task TransactAsync(IReadOnlyList<(string Key, byte[]? Value)> operations, CancellationToken ct = default);
}

/// <summary>JSON helpers over <see cref="ISecureStorage"/>.</summary>
internal static class SecureStorageJson
{
    /// <summary>The serialiser settings of every stored record: snake_case like Vault's storage.</summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
    };

    /// <summary>Reads a JSON record, or default when absent.</summary>
    public static async Task<T?> GetJsonAsync<T>(this ISecureStorage storage, string key, CancellationToken ct = default)
    {
        var bytes = await storage.GetAsync(key, ct).ConfigureAwait(false);
        return bytes is null ? default : JsonSerializer.Deserialize<T>(bytes, Options);
    }

    /// <summary>Serialises a record for a put or transaction.</summary>
    public static byte[] ToJson<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    /// <summary>Every key under <paramref name="prefix"/> at any depth, relative to it.</summary>
    public static async Task<List<string>> ListRecursiveAsync(this ISecureStorage storage, string prefix, CancellationToken ct = default)
    {
        var result = new List<string>();
        var folders = new Stack<string>([""]);
        while (folders.TryPop(out var folder))
        {
            foreach (var child in await storage.ListAsync(prefix + folder, ct).ConfigureAwait(false))
            {
                if (child.EndsWith('/'))
                {
                    folders.Push(folder + child);
                }
                else
                {
                    result.Add(folder + child);
                }
            }
        }

        return result;
    }

    /// <summary>Writes a JSON record.</summary>
    public static Task PutJsonAsync<T>(this ISecureStorage storage, string key, T value, CancellationToken ct = default) =>
        storage.PutAsync(key, ToJson(value), ct);
}
