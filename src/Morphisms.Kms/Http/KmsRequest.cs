using System.Text.Json.Nodes;
using Morphisms.Kms.Policies;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Http;

/// <summary>A request after HTTP decoding, as Vault's <c>logical.Request</c>.</summary>
internal sealed class KmsRequest
{
    /// <summary>The request id echoed in the envelope and the audit log.</summary>
    public required string Id { get; init; }

    /// <summary>The operation; POST/PUT start as <see cref="Operation.Update"/> and may become <see cref="Operation.Create"/>.</summary>
    public required Operation Operation { get; set; }

    /// <summary>The full API path after <c>/v1/</c>.</summary>
    public required string Path { get; init; }

    /// <summary>Body parameters merged with query parameters for reads, lists and deletes.</summary>
    public required JsonObject Data { get; init; }

    /// <summary>Typed access to <see cref="Data"/>.</summary>
    public Fields Fields => field ??= new Fields(Data);

    /// <summary>The presented token, or null.</summary>
    public string? ClientToken { get; init; }

    /// <summary>The peer address, for the audit log.</summary>
    public string RemoteAddress { get; init; } = "";

    /// <summary>The Content-Type header (PATCH requires merge-patch).</summary>
    public string? ContentType { get; init; }

    /// <summary>The mount this request routes to, with trailing slash (<c>sys/</c>, <c>auth/token/</c>, <c>secret/</c>).</summary>
    public string MountPoint { get; set; } = "";

    /// <summary>The path inside the mount.</summary>
    public string RelativePath { get; set; } = "";

    /// <summary>The validated token, for authenticated routes.</summary>
    public TokenEntry? Token { get; set; }

    /// <summary>The token's merged policies, for authenticated routes.</summary>
    public Acl? Acl { get; set; }

    /// <summary>The unsealed state the request runs against, or null while sealed.</summary>
    public UnsealedState? State { get; set; }

    /// <summary>The unsealed state, or a 503 when sealed.</summary>
    public UnsealedState RequireState() => State ?? throw KmsException.Sealed();

    /// <summary>
    /// For a handler that acts on a normalised form of the path it was sent (<c>sys/mounts/secret/</c> as
    /// <c>sys/mounts/secret</c>, a policy name lowercased): the ACL judged the path as sent, so it must also allow
    /// <paramref name="canonicalPath"/>, or an exact rule there (a deny, fewer capabilities than a glob beside it) would be
    /// escaped by another spelling. Nothing to check when the two are the same, or for a route without an ACL.
    /// </summary>
    /// <exception cref="KmsException">403: the ACL does not allow the operation on <paramref name="canonicalPath"/>.</exception>
    public void RequireAllowedAsWell(string canonicalPath)
    {
        if (canonicalPath != Path && Acl is { } acl && !acl.Allows(Operation, canonicalPath))
        {
            throw KmsException.PermissionDenied();
        }
    }
}
