namespace Morphisms.Agent.Evidence;

/// <summary>TEE evidence as attest-login takes it.</summary>
/// <param name="Tee">The wire name: <c>snp</c>, <c>sgx</c> or <c>tdx</c>.</param>
/// <param name="Evidence">The raw report or quote.</param>
/// <param name="Endorsements">SNP: the VCEK/VLEK (DER); SGX/TDX: a collateral bundle; or null to let the KMS supply them.</param>
/// <param name="Simulated">True when made by the simulated TEE (it proves nothing about hardware).</param>
public sealed record TeeEvidence(string Tee, byte[] Evidence, byte[]? Endorsements, bool Simulated = false);

/// <summary>Produces evidence whose REPORT_DATA is exactly the 64 bytes asked for.</summary>
public interface IEvidenceProvider
{
    /// <summary>The provider's name for logs (<c>sim</c>, <c>gramine</c>, <c>configfs-tsm</c>, <c>sev-guest</c>).</summary>
    string Name { get; }

    /// <summary>Gets evidence binding <paramref name="reportData"/> (64 bytes).</summary>
    Task<TeeEvidence> GetEvidenceAsync(ReadOnlyMemory<byte> reportData, CancellationToken ct);
}

/// <summary>Evidence could not be obtained or does not carry the requested report data.</summary>
public sealed class EvidenceException(string message, Exception? inner = null) : Exception(message, inner);
