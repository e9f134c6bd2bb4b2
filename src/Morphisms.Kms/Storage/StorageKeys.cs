using System.Text;

namespace Morphisms.Kms.Storage;

/// <summary>Key-space helpers shared by the storage implementations.</summary>
internal static class StorageKeys
{
    /// <summary>
    /// Folds full keys under <paramref name="prefix"/> into Vault-style immediate children. Keys must already
    /// start with the prefix.
    /// </summary>
    public static IReadOnlyList<string> ImmediateChildren(string prefix, IEnumerable<string> keys)
    {
        var children = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            var rest = key[prefix.Length..];
            if (rest.Length == 0)
            {
                continue;
            }

            var slash = rest.IndexOf('/');
            children.Add(slash < 0 ? rest : rest[..(slash + 1)]);
        }

        return [.. children];
    }

    /// <summary>
    /// The smallest string greater than every string that starts with <paramref name="prefix"/>, in UTF-8 byte
    /// order (which is code point order), or null when there is none. UTF-8 is prefix-free and order-preserving,
    /// so bumping the last code point bounds the range exactly.
    /// </summary>
    public static string? PrefixUpperBound(string prefix)
    {
        var runes = prefix.EnumerateRunes().ToList();
        while (runes.Count > 0)
        {
            var last = runes[^1].Value;
            runes.RemoveAt(runes.Count - 1);
            var next = last + 1;
            if (next == 0xD800)
            {
                next = 0xE000;
            }

            if (next <= 0x10FFFF)
            {
                var sb = new StringBuilder();
                foreach (var r in runes)
                {
                    sb.Append(r.ToString());
                }

                return sb.Append(new Rune(next).ToString()).ToString();
            }
        }

        return null;
    }
}
