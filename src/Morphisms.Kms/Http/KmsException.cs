namespace Morphisms.Kms.Http;

/// <summary>
/// A failure that becomes a Vault error response <c>{"errors":[...]}</c> with <see cref="StatusCode"/>.
/// Messages name the problem and never carry secret values or tokens.
/// </summary>
internal sealed class KmsException : Exception
{
    public KmsException(int statusCode, params string[] errors)
        : base(errors.Length > 0 ? errors[0] : $"status {statusCode}")
    {
        StatusCode = statusCode;
        Errors = errors;
    }

    /// <summary>The HTTP status of the response.</summary>
    public int StatusCode { get; }

    /// <summary>The messages of the <c>errors</c> array (Vault answers some 404s with an empty array).</summary>
    public IReadOnlyList<string> Errors { get; }

    /// <summary>400 with <paramref name="message"/>.</summary>
    public static KmsException BadRequest(string message) => new(400, message);

    /// <summary>403 "permission denied": missing, invalid, expired or revoked token, or an ACL refusal.</summary>
    public static KmsException PermissionDenied() => new(403, "permission denied");

    /// <summary>404 with no message, as Vault answers reads of absent secrets.</summary>
    public static KmsException NotFound() => new(404);

    /// <summary>404 for a path no backend serves.</summary>
    public static KmsException UnsupportedPath(string path) => new(404, $"unsupported path: {path}");

    /// <summary>405 for a path that exists but not with this operation.</summary>
    public static KmsException UnsupportedOperation(string operation, string path) =>
        new(405, $"unsupported operation: {operation} is not supported on {path}");

    /// <summary>503 while the KMS is sealed.</summary>
    public static KmsException Sealed() => new(503, "Vault is sealed");
}
