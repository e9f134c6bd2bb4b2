namespace Morphisms.Client.Functions;

/// <summary>What a client requires of the function it talks to.</summary>
public sealed record FunctionExpectation
{
    /// <summary>The function name the certificate's attested identity must carry.</summary>
    public required string Function { get; init; }

    /// <summary>The host name the client connects to (the TLS SNI); the certificate must name it.</summary>
    public required string Host { get; init; }

    /// <summary>
    /// When set, the certificate's attested identity must name this pin's TEE and carry its value
    /// (<see cref="FunctionMeasurementPin"/>; for TDX that value is MRTD, the TD firmware only).
    /// </summary>
    public FunctionMeasurementPin? Measurement { get; init; }

    /// <summary>Accept an identity attested by the simulated TEE (dev installations only).</summary>
    public bool AllowSimulated { get; init; }
}
