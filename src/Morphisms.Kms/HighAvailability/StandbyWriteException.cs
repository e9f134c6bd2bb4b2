namespace Morphisms.Kms.HighAvailability;

/// <summary>
/// A write reached storage on a node that is not (or is no longer) the active node: another node became active
/// since, or this one is a standby. Nothing was written. The request fails with 503 and the client retries against
/// the active node.
/// </summary>
public sealed class StandbyWriteException : IOException
{
    /// <summary>Creates the exception with the standard message.</summary>
    public StandbyWriteException()
        : base("this KMS node is not the active node: the write was refused; retry against the active node")
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/>.</summary>
    public StandbyWriteException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with <paramref name="message"/> and its cause.</summary>
    public StandbyWriteException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
