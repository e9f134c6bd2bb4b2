namespace Morphisms.Attestation.Simulated;

/// <summary>What a simulated SEV-SNP guest asks its (simulated) AMD secure processor to sign.</summary>
public sealed record SimulatedSnpReportRequest
{
    /// <summary>64 bytes of caller data (the binding of nonce and key).</summary>
    public required byte[] ReportData { get; init; }

    /// <summary>48-byte launch measurement (see <see cref="SimulatedMeasurement"/>).</summary>
    public required byte[] Measurement { get; init; }

    /// <summary>32 bytes the host supplied at launch (Morphisms puts the launch-config hash here).</summary>
    public byte[] HostData { get; init; } = new byte[32];

    /// <summary>Guest policy. Default: SMT allowed, reserved bit 17 set, debug and migration agent off.</summary>
    public ulong Policy { get; init; } = SimulatedTeeAuthority.DefaultSnpPolicy;

    /// <summary>VMPL the request came from.</summary>
    public uint Vmpl { get; init; }

    /// <summary>Guest SVN from the ID block.</summary>
    public uint GuestSvn { get; init; }
}

/// <summary>What a simulated SGX enclave asks its (simulated) quoting enclave to sign.</summary>
public sealed record SimulatedSgxQuoteRequest
{
    /// <summary>64 bytes of caller data (the binding of nonce and key).</summary>
    public required byte[] ReportData { get; init; }

    /// <summary>32-byte MRENCLAVE (see <see cref="SimulatedMeasurement"/>).</summary>
    public required byte[] MrEnclave { get; init; }

    /// <summary>32-byte MRSIGNER; defaults to the simulated enclave signer.</summary>
    public byte[]? MrSigner { get; init; }

    /// <summary>ISVPRODID.</summary>
    public ushort IsvProdId { get; init; }

    /// <summary>ISVSVN.</summary>
    public ushort IsvSvn { get; init; }

    /// <summary>Sets ATTRIBUTES.DEBUG, as a debug enclave would (policies reject it by default).</summary>
    public bool Debug { get; init; }
}
