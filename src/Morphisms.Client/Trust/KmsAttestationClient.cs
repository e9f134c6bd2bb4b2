using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Binding;

namespace Morphisms.Client.Trust;

/// <summary>
/// Verifies a KMS before anything is sent to it (DESIGN.md §3): asks for its evidence with a fresh
/// nonce, and recomputes REPORT_DATA from the TLS certificate this connection actually saw and the root CA the KMS
/// serves. Only when the evidence is genuine, shows one of the expected measurements (of its TEE, every component
/// equal: for TDX, MRTD and RTMR0–3), passes the policy, binds exactly those, the KMS proves it holds the root CA's
/// key (<see cref="KmsRootCaProof"/>: the root certificate is public, so binding it alone lets any attested server
/// present another KMS's root beside its own TLS key) and — when <see cref="KmsTrustOptions.ExpectedRootCaSha256"/> is
/// given — the root CA is the one the operator published does the client pin the root CA. Without that fingerprint
/// the root is whichever the answering KMS holds (trust on first use of the operator; the measurement pins only the code).
/// </summary>
public static class KmsAttestationClient
{
    /// <summary>
    /// The most of a KMS's attestation answer that is read: 1 MiB. The answer comes before the KMS is trusted, from whatever
    /// answers at the address over a TLS connection whose certificate nothing vouches for yet, so it is bounded rather than
    /// buffered up to .NET's default of 2 GiB; a genuine one (evidence, a VCEK or quote certification chain, the root CA
    /// and its proof) is a few KiB to some tens of KiB. <c>KmsCrlSource</c> bounds a CRL, read from a pinned KMS, at 8 MiB.
    /// </summary>
    internal const int MaxResponseBytes = 1024 * 1024;

    /// <summary>
    /// Verifies the KMS at <paramref name="kmsUrl"/> (an https URL). Refused without contacting it when
    /// <paramref name="options"/> says no measurement to expect (see <see cref="KmsTrustOptions.MeasurementPolicyProblem"/>).
    /// </summary>
    public static async Task<KmsTrustOutcome> VerifyAsync(string kmsUrl, KmsTrustOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.MeasurementPolicyProblem() is { } policyProblem)
        {
            return Refused($"measurement: {policyProblem}");
        }

        string? expectedRoot = null;
        if (options.ExpectedRootCaSha256 is { } expectedText)
        {
            try
            {
                expectedRoot = KmsTrustOptions.ParseRootCaSha256(expectedText);
            }
            catch (FormatException e)
            {
                return Refused($"root_ca: expected root CA: {e.Message}");
            }
        }

        if (!Uri.TryCreate(kmsUrl, UriKind.Absolute, out var baseUri) || baseUri.Scheme != Uri.UriSchemeHttps)
        {
            return Refused($"{kmsUrl}: a KMS can only be attested over https — its evidence binds the TLS key");
        }

        var nonce = RandomNumberGenerator.GetBytes(32);
        X509Certificate2? presented = null;
        // No redirect is followed: the evidence must come from the address being pinned, not from wherever a
        // Location header (which anyone on the path can write) points.
        using var handler = new SocketsHttpHandler { AllowAutoRedirect = false };
        // Any certificate is accepted for this one request: nothing secret is sent, and the evidence
        // below decides whether the certificate seen here belongs to an attested KMS.
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
        {
            presented = certificate is null ? null : new X509Certificate2(certificate);
            return certificate is not null;
        };
        // GetAsync reads the whole body into a buffer before it returns, under the timeout: this caps that buffer.
        using var http = new HttpClient(handler) { Timeout = options.Timeout, MaxResponseContentBufferSize = MaxResponseBytes };

        JsonElement data;
        try
        {
            var url = new Uri(baseUri, $"v1/sys/attestation?nonce={Convert.ToHexStringLower(nonce)}");
            using var response = await http.GetAsync(url, cancellationToken).ConfigureAwait(false);
            if ((int)response.StatusCode is >= 300 and < 400)
            {
                // An HA standby sends 307 to its active node: that node is to be trusted by its own address.
                var location = response.Headers.Location is { } l ? $" to {(l.IsAbsoluteUri ? l : new Uri(url, l))}" : string.Empty;
                return Refused($"the KMS at {baseUri.GetLeftPart(UriPartial.Authority)} redirected ({(int)response.StatusCode}){location}: not followed, "
                    + "since the evidence must come from the address being pinned; if that is your KMS (an HA standby names its active node), trust it by that address");
            }

            using var body = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), cancellationToken: cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                var errors = body.RootElement.TryGetProperty("errors", out var e) ? string.Join("; ", e.EnumerateArray().Select(x => x.GetString())) : response.ReasonPhrase;
                return Refused($"the KMS refused to attest: {(int)response.StatusCode} {errors}");
            }

            data = body.RootElement.GetProperty("data").Clone();
        }
        catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.ConfigurationLimitExceeded)
        {
            return Refused($"the KMS's attestation response from {baseUri.GetLeftPart(UriPartial.Authority)} is larger than the {MaxResponseBytes}-byte (1 MiB) limit: "
                + "not read further, since a genuine one is a few KiB; whatever answers there is not a KMS to trust");
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or KeyNotFoundException or InvalidOperationException or TaskCanceledException)
        {
            return Refused($"could not get the KMS's attestation from {kmsUrl}: {e.Message}");
        }

        if (presented is null)
        {
            return Refused("the KMS presented no TLS certificate");
        }

        using var tlsCertificate = presented;
        if (!TryRead(data, out var tee, out var evidence, out var snpCertificate, out var rootCa, out var rootCaProof, out var problem))
        {
            return Refused($"the KMS's attestation response is malformed: {problem}");
        }

        using var root = rootCa;
        var tlsSpki = tlsCertificate.PublicKey.ExportSubjectPublicKeyInfo();
        var binding = ReportDataBinding.ForKms(nonce, tlsSpki, root.RawData);
        AttestationResult result;
        try
        {
            result = await EvidenceVerifier.VerifyAsync(new EvidenceVerificationRequest
            {
                Tee = tee,
                Evidence = evidence,
                SnpCertificate = snpCertificate,
                Collateral = options.Collateral,
                Anchors = options.Anchors,
                Time = options.Time,
                MaximumSnpVmpl = options.MaximumSnpVmpl,
                // The measurement is checked below, against a set, rather than by the verifier's single value.
                ExpectedReportData = binding,
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (EvidenceFormatException e)
        {
            return Refused($"the KMS's evidence is malformed: {e.Message}");
        }

        var failures = result.Failures.Select(f => f.ToString()).ToList();
        if (options.MeasurementFailure(result.Claims) is { } measurementFailure)
        {
            failures.Add($"measurement: {measurementFailure}");
        }

        if (!IsCertificateAuthority(root))
        {
            failures.Add("root_ca: the certificate the KMS serves as its root CA is not a self-signed CA certificate");
        }

        var rootSha256 = Convert.ToHexStringLower(SHA256.HashData(root.RawData));
        if (RootCaProofFailure(root, rootSha256, nonce, tlsSpki, rootCaProof) is { } proofFailure)
        {
            failures.Add(proofFailure);
        }

        if (expectedRoot is not null && rootSha256 != expectedRoot)
        {
            // The evidence binds the root it serves, so a KMS cannot show one root and pin another: a mismatch is another
            // KMS than the operator's (the same image in someone else's TEE passes the measurement check) or another installation.
            failures.Add($"root_ca: the KMS presents the root CA sha256 {rootSha256}, not the expected {expectedRoot}: "
                + "it is not the KMS whose operator published that fingerprint");
        }

        if (failures.Count > 0)
        {
            return new KmsTrustOutcome(null, result, failures);
        }

        var record = new KmsTrustRecord
        {
            KmsUrl = KmsTrustStore.Normalize(kmsUrl),
            RootCaPem = root.ExportCertificatePem(),
            RootCaSha256 = rootSha256,
            TlsSpkiSha256 = Convert.ToHexStringLower(SHA256.HashData(tlsSpki)),
            Tee = tee.ToWireName(),
            Measurement = KmsMeasurementPin.Of(result.Claims).ToString(),
            ExpectedMeasurements = [.. options.AcceptedMeasurements.Select(m => m.ToString())],
            AnyMeasurement = options.AnyMeasurement,
            Simulated = result.Simulated,
            RootCaKeyProven = true,
            VerifiedAt = options.Time.GetUtcNow(),
        };
        return new KmsTrustOutcome(record, result, []) { Warnings = options.WorkloadWarning(result.Claims) is { } warning ? [warning] : [] };
    }

    /// <summary>
    /// Why the KMS has not shown it holds <paramref name="root"/>'s private key, or null when <paramref name="proof"/> is
    /// that key's signature over this nonce, this connection's TLS key and the root (<see cref="KmsRootCaProof"/>).
    /// Without it the evidence shows only that the answering TEE holds the TLS key and knows the root's certificate,
    /// which anyone can fetch from the real KMS: with <c>--any-measurement</c>, any TEE could pass for that KMS.
    /// </summary>
    private static string? RootCaProofFailure(X509Certificate2 root, string rootSha256, byte[] nonce, byte[] tlsSpki, byte[]? proof)
    {
        var failed = $"root_ca: the KMS did not prove it holds root CA sha256 {rootSha256}";
        if (proof is null)
        {
            return $"{failed}: its attestation carries no root_ca_proof (a signature by that root's key over this nonce and TLS key). "
                + "The root certificate is public, so binding it proves nothing about who holds its key; a KMS from before the proof "
                + "sends none, and must be upgraded to be trusted";
        }

        return KmsRootCaProof.Verify(root, nonce, tlsSpki, proof)
            ? null
            : $"{failed}: its root_ca_proof does not verify with that root's key over this nonce and TLS key. The root certificate "
                + "is public: a server that copied it (from the real KMS's sys/attestation, say) cannot sign with its key";
    }

    private static bool TryRead(JsonElement data, out TeeType tee, out byte[] evidence, out byte[]? snpCertificate, out X509Certificate2 rootCa, out byte[]? rootCaProof, out string problem)
    {
        tee = default;
        evidence = [];
        snpCertificate = null;
        rootCa = null!;
        rootCaProof = null;
        problem = string.Empty;
        try
        {
            if (!TeeTypes.TryParse(data.GetProperty("tee").GetString(), out tee))
            {
                problem = "tee: unknown TEE type";
                return false;
            }

            evidence = Convert.FromBase64String(data.GetProperty("evidence").GetString() ?? string.Empty);
            if (data.TryGetProperty("vcek", out var vcek) && vcek.ValueKind == JsonValueKind.String)
            {
                snpCertificate = System.Text.Encoding.ASCII.GetBytes(vcek.GetString()!);
            }

            if (data.TryGetProperty("root_ca_proof", out var proof) && proof.ValueKind == JsonValueKind.String)
            {
                rootCaProof = Convert.FromBase64String(proof.GetString()!);
            }

            rootCa = X509Certificate2.CreateFromPem(data.GetProperty("root_ca").GetString() ?? string.Empty);
            return true;
        }
        catch (Exception e) when (e is KeyNotFoundException or FormatException or InvalidOperationException or CryptographicException or ArgumentException)
        {
            problem = e.Message;
            return false;
        }
    }

    private static bool IsCertificateAuthority(X509Certificate2 certificate) =>
        certificate.SubjectName.RawData.AsSpan().SequenceEqual(certificate.IssuerName.RawData)
        && certificate.Extensions.OfType<X509BasicConstraintsExtension>().Any(b => b.CertificateAuthority);

    private static KmsTrustOutcome Refused(string reason) => new(null, null, [reason]);
}
