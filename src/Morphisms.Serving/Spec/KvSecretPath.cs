namespace Morphisms.Serving.Spec;

/// <summary>
/// What a function's <c>secrets</c> path must be: a KV v2 data path <c>MOUNT/data/PATH</c>. The path is pasted into
/// the ACL policy the serving host writes for the function (<c>path "…" { capabilities = ["read"] }</c>), so anything
/// beyond plain segments — a quote, a brace, a space, a glob (<c>*</c>, <c>+</c>) or a <c>.</c>/<c>..</c> segment —
/// could widen or add rules. The rule is the KMS's own for a function's <c>secret_path</c> (letters, digits, '-', '_',
/// '.' segments; no empty, <c>.</c> or <c>..</c> segment; at most 512 characters), stricter in that it requires the
/// <c>data</c> segment after the mount and no leading or trailing '/'.
/// </summary>
public static class KvSecretPath
{
    /// <summary>The longest path accepted (the KMS's limit).</summary>
    public const int MaxLength = 512;

    /// <summary>What an accepted path looks like, for error messages.</summary>
    public const string Description = "a KV v2 data path MOUNT/data/PATH whose segments are ASCII letters, digits, '-', '_' and '.' (no '.' or '..' segment, no globs, quotes, spaces or braces)";

    /// <summary>True when <paramref name="path"/> is <c>MOUNT/data/PATH</c> made only of plain segments.</summary>
    public static bool IsValid(string? path)
    {
        if (path is null || path.Length is 0 or > MaxLength)
        {
            return false;
        }

        var segments = path.Split('/');
        return segments.Length >= 3
            && segments[1] == "data"
            && segments.All(IsSegment);
    }

    private static bool IsSegment(string segment) =>
        segment.Length > 0
        && segment is not ("." or "..")
        && segment.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');
}
