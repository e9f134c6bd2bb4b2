using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Binding;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Kms.Tests;

/// <summary>
/// What a function instance does inside its (simulated) TEE before login: generate a key, make a CSR for it, and
/// get evidence whose REPORT_DATA binds the KMS's nonce and the key.
/// </summary>
public sealed class FunctionInstance : IDisposable
{
    /// <summary>A fixed SNP-format measurement for tests.</summary>
    public static readonly byte[] SnpMeasurement = SHA384.HashData("morphisms test function signer"u8);

    /// <summary>A fixed SGX-format MRENCLAVE for tests.</summary>
    public static readonly byte[] SgxMeasurement = SHA256.HashData("morphisms test function signer"u8);

    private readonly ECDsa _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>The CSR for the instance's key, PEM.</summary>
    public string CsrPem => new CertificateRequest("CN=signer", _key, HashAlgorithmName.SHA256).CreateSigningRequestPem();

    /// <summary>The key's SubjectPublicKeyInfo.</summary>
    public byte[] Spki => _key.ExportSubjectPublicKeyInfo();

    /// <summary>The binding for <paramref name="nonce"/> and this key.</summary>
    public byte[] Binding(byte[] nonce) => ReportDataBinding.ForFunction(nonce, Spki);

    /// <summary>A simulated SNP report binding <paramref name="nonce"/> and this key.</summary>
    public byte[] SnpReport(byte[] nonce, byte[]? measurement = null, ulong policy = SimulatedTeeAuthority.DefaultSnpPolicy, SimulatedTeeAuthority? tee = null) =>
        (tee ?? SimulatedTees.Trusted).CreateSnpReport(new SimulatedSnpReportRequest
        {
            ReportData = Binding(nonce),
            Measurement = measurement ?? SnpMeasurement,
            Policy = policy,
        });

    /// <summary>A simulated SGX quote binding <paramref name="nonce"/> and this key.</summary>
    public byte[] SgxQuote(byte[] nonce, byte[]? mrEnclave = null, bool debug = false) =>
        SimulatedTees.Trusted.CreateSgxQuote(new SimulatedSgxQuoteRequest { ReportData = Binding(nonce), MrEnclave = mrEnclave ?? SgxMeasurement, Debug = debug });

    /// <inheritdoc />
    public void Dispose() => _key.Dispose();
}
