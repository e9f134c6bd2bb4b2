using System.Security.Cryptography;
using System.Text;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Tests.Simulated;
using Morphisms.Attestation.Tests.Snp;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify.Snp;

namespace Morphisms.Attestation.Tests.Fuzz;

/// <summary>
/// SEV-SNP evidence comes from the instance and its host: the report, and the VCEK/VLEK (DER, or PEM with its chain)
/// it sends as endorsements. Mutated, each must parse and verify to failed checks, or be refused with
/// <see cref="EvidenceFormatException"/>.
/// </summary>
public sealed class SnpFuzzTests(SimulatedFixture fixture) : IClassFixture<SimulatedFixture>
{
    /// <summary>The report's integer fields: version, policy, VMPL, signature algorithm, signer info and the TCBs.</summary>
    private static readonly WireField[] ReportFields =
    [
        new("version", 0x00, 4), new("guest_svn", 0x04, 4), new("policy", 0x08, 8), new("vmpl", 0x30, 4),
        new("signature_algo", 0x34, 4), new("current_tcb", 0x38, 8), new("platform_info", 0x40, 8),
        new("signer_info", 0x48, 4), new("reported_tcb", 0x180, 8), new("cpuid_fam_id", 0x188, 1),
        new("cpuid_mod_id", 0x189, 1), new("cpuid_step", 0x18A, 1), new("committed_tcb", 0x1E0, 8),
        new("launch_tcb", 0x1F0, 8), new("launch_mit_vector", 0x1F8, 8), new("signature.r", SnpReport.SignatureOffset, 8),
        new("signature.s", SnpReport.SignatureOffset + SnpReport.SignatureComponentSize, 8),
    ];

    [VectorFact]
    public void Real_reports_parse_or_are_refused_as_malformed()
    {
        var seeds = SnpVectors.Reports.Select(r => new FuzzSeed(r.Name, SnpVectors.Report(r.Name), ReportFields)).ToList();
        var stats = Fuzzer.Run("SnpReport.Parse", seed: 0x5E5, iterations: 3000, seeds, Mutations.Bytes, ParseAndRead, typeof(EvidenceFormatException));
        Assert.True(stats.Accepted > 100, $"only {stats.Accepted} mutated reports parsed");
    }

    /// <summary>The simulated TEE's v3 report (its keys are new each run: failures reproduce by their mutation).</summary>
    [Fact]
    public void Simulated_report_parses_or_is_refused_as_malformed()
    {
        var seeds = new[] { new FuzzSeed("simulated v3", SimulatedReport(), ReportFields) };
        Fuzzer.Run("SnpReport.Parse (simulated)", seed: 0x5E6, iterations: 1500, seeds, Mutations.Bytes, ParseAndRead, typeof(EvidenceFormatException));
    }

    /// <summary>A mutated report against its real VCEK: signature, TCB and product checks fail, nothing throws.</summary>
    [VectorFact]
    public void Mutated_real_report_is_verified_or_refused_as_malformed()
    {
        var seeds = new[] { "trustee_milan_v2", "trustee_genoa_v3", "trustee_milan_vlek_v3" }
            .Select(name => new FuzzSeed(name, SnpVectors.Report(name), ReportFields)).ToList();
        var verifiers = seeds.ToDictionary(s => s.Name, s => (Verifier: new SnpVerifier(SnpVectors.Options(s.Name)), Endorsements: SnpVectors.Endorsements(s.Name)));
        Fuzzer.Run("SnpVerifier.Verify (report)", seed: 0x5E7, iterations: 1000, seeds, Mutations.Bytes, (seed, bytes) =>
        {
            var (verifier, endorsements) = verifiers[seed.Name];
            _ = verifier.Verify(bytes, endorsements).Log.Passed;
        }, typeof(EvidenceFormatException));
    }

    /// <summary>
    /// The VCEK/VLEK a login sends (DER, PEM, PEM with its chain) is parsed by <see cref="SnpEndorsements.Load"/> and
    /// read by the verifier: its AMD extensions, names, validity, key and signature.
    /// </summary>
    [VectorFact]
    public void Mutated_real_key_certificate_is_loaded_and_verified_or_refused_as_malformed()
    {
        string[] der = ["trustee_milan_vcek.der", "trustee_genoa_vcek.der", "trustee_milan_vlek.der", "gosevguest_milan_vcek.der"];
        string[] pem = ["trustee_azure_milan_vcek_chain.pem", "trustee_azure_genoa_vcek.pem"];
        var derSeeds = der.Select(f => new FuzzSeed(f, TestVectors.Read("snp", f))).ToList();
        var pemSeeds = pem.Select(f => new FuzzSeed(f, TestVectors.Read("snp", f))).ToList();
        var report = SnpVectors.Report("trustee_milan_v2");
        var verifier = new SnpVerifier(SnpVectors.Options("trustee_milan_v2"));

        void LoadAndVerify(byte[] bytes)
        {
            var endorsements = SnpEndorsements.Load(bytes);
            _ = SnpKeyCertificateExtensions.Parse(endorsements.KeyCertificate).ProductLine;
            _ = verifier.Verify(report, endorsements).Log.Passed;
        }

        Fuzzer.Run("SnpEndorsements.Load (DER)", seed: 0x5E8, iterations: 800, derSeeds, Mutations.Der, LoadAndVerify, typeof(EvidenceFormatException));
        Fuzzer.Run("SnpEndorsements.Load (PEM)", seed: 0x5E9, iterations: 300, pemSeeds, Mutations.Pem, LoadAndVerify, typeof(EvidenceFormatException));
    }

    /// <summary>The simulated VCEK and AMD-format CRL, which need no vectors.</summary>
    [Fact]
    public void Mutated_simulated_key_certificate_and_crl_are_read_or_refused_as_malformed()
    {
        var tee = fixture.Authority;
        var report = SimulatedReport();
        var verifier = new SnpVerifier(new SnpVerifyOptions { Anchors = tee.TrustedWith(TrustAnchors.Vendor) });
        Fuzzer.Run("SnpEndorsements.Load (simulated)", seed: 0x5EA, iterations: 800, [new FuzzSeed("simulated VCEK", tee.Vcek.RawData)], Mutations.Der, bytes =>
        {
            var endorsements = SnpEndorsements.Load(bytes);
            _ = verifier.Verify(report, endorsements).Log.Passed;
        }, typeof(EvidenceFormatException));

        var crl = tee.CreateSnpCrl(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1), revokeVcek: true);
        var pem = Encoding.ASCII.GetBytes(PemEncoding.WriteString("X509 CRL", crl));
        Fuzzer.Run("CertificateRevocationList.Parse (simulated)", seed: 0x5EB, iterations: 800,
            [new FuzzSeed("simulated ARK CRL", crl), new FuzzSeed("simulated ARK CRL, PEM", pem)],
            (rng, seed) => seed.Data[0] == '-' ? Mutations.Pem(rng, seed) : Mutations.Der(rng, seed),
            bytes => CertificateFuzzTests.ReadCrl(bytes, tee.AmdRoots.Ark, tee.Vcek), typeof(EvidenceFormatException));
    }

    /// <summary>What a display or the appraisal reads of a parsed report.</summary>
    private static void ParseAndRead(byte[] bytes)
    {
        var claims = (SnpClaims)EvidenceVerifier.Parse(TeeType.Snp, bytes);
        _ = (claims.Product, claims.Policy.ToString(), claims.SigningKey, claims.ReportedTcb.ToString(), claims.CurrentTcb.ReservedBytes.Length,
            claims.LaunchTcb.Fmc, claims.CurrentFirmware.ToString(), claims.LaunchMitigationVector, claims.Report.SignatureP1363());
    }

    private byte[] SimulatedReport() => fixture.Authority.CreateSnpReport(new SimulatedSnpReportRequest
    {
        ReportData = SHA512.HashData("fuzz"u8),
        Measurement = SHA384.HashData("fuzz"u8),
    });
}
