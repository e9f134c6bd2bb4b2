namespace Morphisms.Attestation.Simulated;

/// <summary>The SEV-SNP TCB version the simulated platform reports (Milan/Genoa layout).</summary>
/// <param name="Bootloader">Bootloader SPL.</param>
/// <param name="Tee">PSP OS SPL.</param>
/// <param name="Snp">SNP firmware SPL.</param>
/// <param name="Microcode">Microcode SPL.</param>
public sealed record SimulatedTcb(byte Bootloader, byte Tee, byte Snp, byte Microcode)
{
    /// <summary>The 64-bit TCB_VERSION encoding: byte 0 bootloader, 1 TEE, 6 SNP, 7 microcode.</summary>
    public ulong ToUInt64() =>
        Bootloader | ((ulong)Tee << 8) | ((ulong)Snp << 48) | ((ulong)Microcode << 56);
}

/// <summary>The SGX platform the simulated PCK certificate describes.</summary>
/// <param name="Fmspc">FMSPC, 6 bytes.</param>
/// <param name="PceId">PCEID, 2 bytes.</param>
/// <param name="Ppid">PPID, 16 bytes.</param>
/// <param name="SgxTcbComponents">16 SGX TCB component SVNs (also the certified CPUSVN).</param>
/// <param name="PceSvn">Certified PCE SVN.</param>
public sealed record SimulatedPlatform(byte[] Fmspc, byte[] PceId, byte[] Ppid, byte[] SgxTcbComponents, ushort PceSvn);
