using System.Formats.Asn1;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Checks Intel DCAP collateral at an evaluation time: the TCB info and QE identity signatures (ECDSA
/// P-256 over the exact signed bytes) by a TCB-signing certificate that a trusted Intel root issued and
/// that is valid and not revoked at that time; the validity windows (issueDate..nextUpdate,
/// thisUpdate..nextUpdate) of every item; the root CA CRL's signature. Every problem is recorded in
/// the check log with a reason naming the item; nothing throws for bad collateral.
/// </summary>
public static class CollateralVerifier
{
    /// <summary>Check name for TCB info problems.</summary>
    public const string TcbInfoCheck = "dcap.collateral.tcb_info";

    /// <summary>Check name for QE identity problems.</summary>
    public const string QeIdentityCheck = "dcap.collateral.qe_identity";

    /// <summary>Check name for PCK CRL problems.</summary>
    public const string PckCrlCheck = "dcap.collateral.pck_crl";

    /// <summary>Check name for root CA CRL problems.</summary>
    public const string RootCrlCheck = "dcap.collateral.root_crl";

    /// <summary>Verifies <paramref name="collateral"/> for evidence from <paramref name="tee"/> at <paramref name="time"/>.</summary>
    /// <param name="collateral">What the collateral source returned.</param>
    /// <param name="tee">SGX or TDX: selects which TCB info id and QE identity id are acceptable.</param>
    /// <param name="anchors">Trusted roots; the Intel ones anchor the TCB-signing certificates and the root CA CRL.</param>
    /// <param name="time">Evaluation time (never the wall clock implicitly: the caller's <see cref="TimeProvider"/> supplies it).</param>
    /// <param name="log">Receives one failure per problem.</param>
    /// <returns>The items that verified; see <see cref="VerifiedCollateral"/> for when an item is null.</returns>
    public static VerifiedCollateral Verify(DcapCollateral collateral, TeeType tee, TrustAnchors anchors, DateTimeOffset time, CheckLog log)
    {
        ArgumentNullException.ThrowIfNull(collateral);
        ArgumentNullException.ThrowIfNull(anchors);
        ArgumentNullException.ThrowIfNull(log);
        if (tee is not (TeeType.Sgx or TeeType.Tdx))
        {
            throw new ArgumentException("DCAP collateral exists for SGX and TDX only", nameof(tee));
        }

        var (rootCrl, rootCrlRoot) = VerifyRootCrl(collateral.RootCaCrl, anchors, time, log);
        var signers = TrustedSigners(collateral.TcbSigningCertificates, anchors, rootCrl, time);

        var (tcbInfo, tcbSigner) = VerifyDocument(
            collateral.TcbInfo, "TCB info", TcbInfoCheck, body => TcbInfo.Parse(body), t => (t.IssueDate, t.NextUpdate), signers, time, log);
        if (tcbInfo is not null && tcbInfo.Tee != tee)
        {
            log.Fail(TcbInfoCheck, $"TCB info is for {tcbInfo.Tee.ToWireName()} (id {tcbInfo.Id ?? "none, version 2"}), but the evidence is {tee.ToWireName()}");
            (tcbInfo, tcbSigner) = (null, null);
        }

        var (qeIdentity, qeSigner) = VerifyDocument(
            collateral.QeIdentity, "QE identity", QeIdentityCheck, body => EnclaveIdentity.Parse(body), q => (q.IssueDate, q.NextUpdate), signers, time, log);
        var expectedQe = tee == TeeType.Tdx ? "TD_QE" : "QE";
        if (qeIdentity is not null && qeIdentity.Id != expectedQe)
        {
            log.Fail(QeIdentityCheck, $"enclave identity is for {qeIdentity.Id}, but {tee.ToWireName()} quotes are signed by the {expectedQe}");
            (qeIdentity, qeSigner) = (null, null);
        }

        var pckCrl = ParsePckCrl(collateral.PckCrl, time, log);

        return new VerifiedCollateral
        {
            Tee = tee,
            TcbInfo = tcbInfo,
            QeIdentity = qeIdentity,
            PckCrl = pckCrl,
            RootCaCrl = rootCrl,
            TcbInfoSigner = tcbSigner?.Certificate,
            QeIdentitySigner = qeSigner?.Certificate,
            Simulated = tcbSigner?.Root.Simulated == true || qeSigner?.Root.Simulated == true || rootCrlRoot?.Simulated == true,
        };
    }

    private static (T? Parsed, Signer? Signer) VerifyDocument<T>(
        SignedCollateralJson? signed, string name, string check, Func<byte[], T> parse,
        Func<T, (DateTimeOffset Issue, DateTimeOffset Next)> window, IReadOnlyList<Signer> signers, DateTimeOffset time, CheckLog log)
        where T : class
    {
        if (signed is null)
        {
            log.Fail(check, $"collateral: {name} missing");
            return (null, null);
        }

        T parsed;
        try
        {
            parsed = parse(signed.Body);
        }
        catch (EvidenceFormatException e)
        {
            log.Fail(check, $"{name} is malformed: {e.Message}");
            return (null, null);
        }

        var verifying = signers.Where(s => VerifiesRaw(s.Certificate, signed.Body, signed.Signature)).ToList();
        if (verifying.Count == 0)
        {
            log.Fail(check, $"{name} signature does not verify with any trusted Intel TCB signing certificate");
            return (null, null);
        }

        var signer = verifying.FirstOrDefault(s => s.ValidAtTime && !s.Revoked);
        if (signer is null)
        {
            if (verifying.All(s => s.Revoked))
            {
                log.Fail(check, $"{name} is signed by a TCB signing certificate that the root CA CRL revokes");
                return (null, null);
            }

            // The signature is Intel's, so the content is shown, but the certificate's time is over (or not yet come).
            signer = verifying.Where(s => !s.Revoked).MaxBy(s => s.Certificate.NotAfter)!;
            log.Fail(check, $"{name} is signed by a TCB signing certificate that is not valid at the evaluation time " +
                $"(valid {Iso(signer.Certificate.NotBefore)} to {Iso(signer.Certificate.NotAfter)})");
        }

        var (issue, next) = window(parsed);
        CheckWindow(name, check, "issueDate", issue, next, time, log);
        return (parsed, signer);
    }

    private static (CertificateRevocationList? Crl, IntelRoot? Root) VerifyRootCrl(byte[]? der, TrustAnchors anchors, DateTimeOffset time, CheckLog log)
    {
        if (der is null)
        {
            log.Fail(RootCrlCheck, "collateral: root CA CRL missing");
            return (null, null);
        }

        CertificateRevocationList crl;
        try
        {
            crl = CertificateRevocationList.Parse(der);
        }
        catch (EvidenceFormatException e)
        {
            log.Fail(RootCrlCheck, $"root CA CRL is malformed: {e.Message}");
            return (null, null);
        }

        var root = anchors.Intel.FirstOrDefault(r => crl.VerifySignature(r.Certificate));
        if (root is null)
        {
            log.Fail(RootCrlCheck, $"root CA CRL (issuer {crl.Issuer.Name}) is not signed by a trusted Intel root");
            return (null, null);
        }

        CheckWindow("root CA CRL", RootCrlCheck, "thisUpdate", crl.ThisUpdate, crl.NextUpdate, time, log);
        return (crl, root);
    }

    private static CertificateRevocationList? ParsePckCrl(byte[]? der, DateTimeOffset time, CheckLog log)
    {
        if (der is null)
        {
            log.Fail(PckCrlCheck, "collateral: PCK CRL missing");
            return null;
        }

        try
        {
            var crl = CertificateRevocationList.Parse(der);
            CheckWindow("PCK CRL", PckCrlCheck, "thisUpdate", crl.ThisUpdate, crl.NextUpdate, time, log);
            return crl;
        }
        catch (EvidenceFormatException e)
        {
            log.Fail(PckCrlCheck, $"PCK CRL is malformed: {e.Message}");
            return null;
        }
    }

    // Reasons never quote the evaluation time: a result may be reused for any time between the same
    // validity boundaries (see CollateralCache), and must read true for each of them.
    private static void CheckWindow(string name, string check, string startField, DateTimeOffset start, DateTimeOffset? next, DateTimeOffset time, CheckLog log)
    {
        if (next is { } end && time > end)
        {
            log.Fail(check, $"{name} expired: nextUpdate {Iso(end)} is before the evaluation time");
        }
        else if (time < start)
        {
            log.Fail(check, $"{name} is not yet valid: {startField} {Iso(start)} is after the evaluation time");
        }
    }

    /// <summary>
    /// Candidate signers are the certificates shipped with the collateral plus the embedded Intel TCB
    /// signing certificates; each counts only if a trusted Intel root issued it. Self-signed certificates
    /// in the collateral are ignored: a root is trusted because it is an anchor, never because it was sent.
    /// </summary>
    private static List<Signer> TrustedSigners(IReadOnlyList<X509Certificate2> supplied, TrustAnchors anchors, CertificateRevocationList? rootCrl, DateTimeOffset time)
    {
        var signers = new List<Signer>();
        var candidates = supplied.Concat(KnownIntermediates.IntelTcbSigning).DistinctBy(c => c.Thumbprint);
        foreach (var candidate in candidates)
        {
            if (candidate.SubjectName.RawData.AsSpan().SequenceEqual(candidate.IssuerName.RawData)
                || !candidate.GetNameInfo(X509NameType.SimpleName, forIssuer: false).Contains("TCB Signing", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            foreach (var root in anchors.Intel)
            {
                if (!IsIssuedBy(candidate, root.Certificate))
                {
                    continue;
                }

                var valid = WithinValidity(candidate, time) && WithinValidity(root.Certificate, time);
                var revoked = rootCrl is not null && rootCrl.VerifySignature(root.Certificate) && rootCrl.IsRevoked(candidate);
                signers.Add(new Signer(candidate, root, valid, revoked));
            }
        }

        return signers;
    }

    private static bool IsIssuedBy(X509Certificate2 certificate, X509Certificate2 issuer)
    {
        if (!certificate.IssuerName.RawData.AsSpan().SequenceEqual(issuer.SubjectName.RawData))
        {
            return false;
        }

        try
        {
            var reader = new AsnReader(certificate.RawData, AsnEncodingRules.DER).ReadSequence();
            var tbs = reader.ReadEncodedValue();
            var algorithm = reader.ReadEncodedValue();
            var signature = reader.ReadBitString(out _);
            return X509Signature.Verify(tbs.Span, signature, algorithm, issuer);
        }
        catch (AsnContentException)
        {
            return false;
        }
    }

    private static bool WithinValidity(X509Certificate2 certificate, DateTimeOffset time) =>
        time >= new DateTimeOffset(certificate.NotBefore.ToUniversalTime(), TimeSpan.Zero)
        && time <= new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);

    private static bool VerifiesRaw(X509Certificate2 certificate, byte[] body, byte[] signature)
    {
        using var key = certificate.GetECDsaPublicKey();
        if (key is null || key.KeySize != 256 || signature.Length != 64)
        {
            return false;
        }

        try
        {
            return key.VerifyData(body, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static string Iso(DateTimeOffset time) =>
        time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Iso(DateTime time) => Iso(new DateTimeOffset(time.ToUniversalTime(), TimeSpan.Zero));

    private sealed record Signer(X509Certificate2 Certificate, IntelRoot Root, bool ValidAtTime, bool Revoked);
}
