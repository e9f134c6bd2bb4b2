using System.Security.Cryptography.X509Certificates;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Bench;

/// <summary>
/// SEV-SNP report verification with the VCEK chain already verified (cached), against the floor:
/// one bare ECDSA P-384 verification of the same signed region. Target: ≥ 70 % of the bare rate.
/// </summary>
[MemoryDiagnoser]
public class SnpVerificationBenchmarks
{
    private byte[] _report = [];
    private SnpEndorsements _endorsements = null!;
    private SnpVerifier _verifier = null!;
    private ECDsa _vcekKey = null!;
    private byte[] _signature = [];

    [GlobalSetup]
    public void Setup()
    {
        _report = File.ReadAllBytes(BenchVectors.Path("snp", "trustee_milan_v2_report.bin"));
        _endorsements = SnpEndorsements.LoadFiles(BenchVectors.Path("snp", "trustee_milan_vcek.der"));
        _verifier = new SnpVerifier(new SnpVerifyOptions());
        var warm = _verifier.Verify(SnpReport.Parse(_report), _endorsements);
        if (!warm.Log.Passed)
        {
            throw new InvalidOperationException("benchmark report does not verify: " + string.Join("; ", warm.Log.Failures));
        }

        _vcekKey = _endorsements.KeyCertificate.GetECDsaPublicKey()!;
        _signature = SnpReport.Parse(_report).SignatureP1363()!;
    }

    [Benchmark(Baseline = true, Description = "bare ECDSA P-384 verify")]
    public bool BareEcdsaP384() => _vcekKey.VerifyData(_report.AsSpan(0, 0x2A0), _signature, HashAlgorithmName.SHA384);

    [Benchmark(Description = "SNP report verify (chain cached)")]
    public bool CachedSnpVerification() => _verifier.Verify(SnpReport.Parse(_report), _endorsements).Log.Passed;
}
