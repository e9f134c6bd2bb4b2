namespace Morphisms.Client.Functions;

/// <summary>What a client requires of the function it talks to.</summary>
public sealed record FunctionExpectation
{
    /// <summary>The function name the certificate's attested identity must carry.</summary>
    public required string Function { get; init; }

    /// <summary>
    /// The host name the certificate must name: the one the client connects to (the TLS SNI, the request's host), or,
    /// when that is a traffic tag's <c>TAG-FUNCTION.DOMAIN</c> (which no function certificate names), <c>FUNCTION.DOMAIN</c>.
    /// </summary>
    public required string Host { get; init; }

    /// <summary>
    /// When set, the certificate's attested identity must name this pin's TEE and carry its value
    /// (<see cref="FunctionMeasurementPin"/>; for TDX that value is MRTD, the TD firmware only).
    /// </summary>
    public FunctionMeasurementPin? Measurement { get; init; }

    /// <summary>Accept an identity attested by the simulated TEE (dev installations only).</summary>
    public bool AllowSimulated { get; init; }
}
