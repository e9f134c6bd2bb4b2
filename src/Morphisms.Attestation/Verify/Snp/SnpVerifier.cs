using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Checks that an SEV-SNP report is authentic: signed by a VCEK or VLEK whose certificate chains to a
/// trusted AMD root, valid at the evaluation time, not revoked, and certified for exactly the TCB and
/// chip the report names. It does not judge whether the guest is acceptable; that is
/// <c>Validate.SnpValidator</c>'s job. Every failed check is recorded, not just the first.
/// </summary>
public sealed class SnpVerifier
{
    private readonly SnpVerificationCache _cache;

    /// <summary>Creates a verifier. Verifiers share one process-wide cache of time-independent results.</summary>
    public SnpVerifier(SnpVerifyOptions? options = null)
        : this(options, SnpVerificationCache.Shared)
    {
    }

    internal SnpVerifier(SnpVerifyOptions? options, SnpVerificationCache cache)
    {
        Options = options ?? SnpVerifyOptions.Default;
        _cache = cache;
    }

    /// <summary>The options this verifier applies.</summary>
    public SnpVerifyOptions Options { get; }

    /// <summary>Parses and verifies a report.</summary>
    /// <exception cref="EvidenceFormatException">The report is malformed.</exception>
    public SnpVerification Verify(ReadOnlySpan<byte> report, SnpEndorsements endorsements) =>
        Verify(SnpReport.Parse(report), endorsements);

    /// <summary>Verifies a parsed report.</summary>
    public SnpVerification Verify(SnpReport report, SnpEndorsements endorsements)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(endorsements);

        var log = new CheckLog();
        var now = Options.Time.GetUtcNow();
        var signer = report.SignerInfo.SigningKey;
        var key = _cache.Facts(endorsements.KeyCertificate);
        var extensions = key.Extensions;
        if (extensions is null)
        {
            log.Fail(SnpChecks.KeyExtensions, $"{KeyName(signer)} certificate: {key.ExtensionsError}");
        }

        CheckSignerKind(signer, key, extensions, log);
        var product = ResolveProduct(report, key, extensions, log);
        var chain = CheckChain(key, endorsements, signer, product, now, log);
        var roots = chain?.Roots ?? (product is null ? null : Options.Anchors.FindAmdProduct(product));
        CheckCrl(key, endorsements, chain, now, log);
        CheckSignature(report, key, log);
        if (extensions is not null)
        {
            CheckTcb(report, extensions, signer, log);
            CheckChipId(report, extensions, signer, log);
        }

        var claims = new SnpClaims(report, product ?? chain?.Roots.Product) { Simulated = roots?.Simulated ?? false };
        return new SnpVerification(claims, log, roots);
    }

    private static string KeyName(SnpSigningKey signer) => signer == SnpSigningKey.Vlek ? "VLEK" : "VCEK";

    private static void CheckSignerKind(SnpSigningKey signer, CertificateFacts key, SnpKeyCertificateExtensions? extensions, CheckLog log)
    {
        if (signer == SnpSigningKey.None)
        {
            log.Fail(SnpChecks.SigningKey, "the report is not signed (SIGNING_KEY = none)");
            return;
        }

        var certificateIsVlek = key.SubjectCommonName == "SEV-VLEK" || extensions?.CspId is not null;
        var certificateIsVcek = key.SubjectCommonName == "SEV-VCEK" || extensions?.HardwareId is not null;
        if (signer == SnpSigningKey.Vcek && (certificateIsVlek || !certificateIsVcek))
        {
            log.Fail(SnpChecks.SigningKey, $"the report says a VCEK signed it, but the certificate is '{key.SubjectCommonName}'{(certificateIsVlek ? " (a VLEK)" : string.Empty)}");
        }
        else if (signer == SnpSigningKey.Vlek && (certificateIsVcek || !certificateIsVlek))
        {
            log.Fail(SnpChecks.SigningKey, $"the report says a VLEK signed it, but the certificate is '{key.SubjectCommonName}'{(certificateIsVcek ? " (a VCEK)" : string.Empty)}");
        }
    }

    private string? ResolveProduct(SnpReport report, CertificateFacts key, SnpKeyCertificateExtensions? extensions, CheckLog log)
    {
        var fromCertificate = extensions?.ProductLine ?? SnpProducts.FromIssuerCommonName(key.IssuerCommonName);
        var fromCpuid = report.Product;
        var expected = Options.Product;
        if (expected is not null)
        {
            Agree(expected, "the verifier options", fromCpuid, "the report's CPUID");
            Agree(expected, "the verifier options", fromCertificate, "the certificate");
        }
        else if (fromCpuid is not null)
        {
            Agree(fromCpuid, "the report's CPUID", fromCertificate, "the certificate");
        }

        return expected ?? fromCpuid ?? fromCertificate;

        void Agree(string a, string aSource, string? b, string bSource)
        {
            if (b is not null && !string.Equals(a, b, StringComparison.OrdinalIgnoreCase))
            {
                log.Fail(SnpChecks.Product, $"{aSource} say{(aSource.EndsWith('s') ? string.Empty : "s")} {a} but {bSource} says {b}");
            }
        }
    }

    private ChainAttempt? CheckChain(CertificateFacts key, SnpEndorsements endorsements, SnpSigningKey signer, string? product, DateTimeOffset now, CheckLog log)
    {
        var keyName = KeyName(signer);
        var supplied = endorsements.Chain.Select(_cache.Facts).ToList();
        var suppliedRoots = supplied.Where(c => c.IsSelfIssued).ToList();
        var suppliedIntermediates = supplied.Where(c => !c.IsSelfIssued).ToList();

        // A chain that came with the evidence is checked as given: if it is the wrong one, say so
        // rather than silently replacing it with the intermediate we hold.
        CertificateFacts? suppliedIntermediate = null;
        if (suppliedIntermediates.Count > 0)
        {
            suppliedIntermediate = suppliedIntermediates.FirstOrDefault(c => c.SubjectName.AsSpan().SequenceEqual(key.IssuerName));
            if (suppliedIntermediate is null)
            {
                log.Fail(SnpChecks.Chain, $"the certificates supplied with the evidence ({string.Join(", ", suppliedIntermediates.Select(c => c.SubjectCommonName))}) do not include the {keyName}'s issuer '{key.IssuerCommonName}'");
                CheckValidity(log, now, (key, keyName));
                return null;
            }
        }

        var candidates = new List<AmdProductRoots>();
        foreach (var roots in Options.Anchors.Amd)
        {
            if (Intermediate(roots, signer) is not { } intermediate
                || (product is not null && !roots.Simulated && !string.Equals(roots.Product, product, StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            var linksUp = suppliedIntermediate is null
                ? _cache.Facts(intermediate).SubjectName.AsSpan().SequenceEqual(key.IssuerName)
                : _cache.Facts(roots.Ark).SubjectName.AsSpan().SequenceEqual(suppliedIntermediate.IssuerName);
            if (linksUp)
            {
                candidates.Add(roots);
            }
        }

        // Nothing links up by name: still try the product's own roots so the failure says what is wrong.
        if (candidates.Count == 0 && product is not null && Options.Anchors.FindAmdProduct(product) is { } fallback && Intermediate(fallback, signer) is not null)
        {
            candidates.Add(fallback);
        }

        if (candidates.Count == 0)
        {
            log.Fail(SnpChecks.Chain, $"no trusted AMD root certifies a {keyName} issued by '{key.IssuerCommonName}'{(product is null ? string.Empty : $" for {product}")}");
            CheckValidity(log, now, (key, keyName));
            return null;
        }

        ChainAttempt? first = null;
        foreach (var roots in candidates)
        {
            var attempt = TryChain(roots, key, suppliedIntermediate, suppliedRoots, signer);
            if (attempt.Failures.Count == 0)
            {
                CheckValidity(log, now, (key, keyName), (attempt.Intermediate, IntermediateName(signer)), (attempt.Ark, "ARK"));
                return attempt;
            }

            first ??= attempt;
        }

        foreach (var failure in first!.Failures)
        {
            log.Fail(SnpChecks.Chain, failure);
        }

        CheckValidity(log, now, (key, keyName), (first.Intermediate, IntermediateName(signer)), (first.Ark, "ARK"));
        return first;
    }

    private ChainAttempt TryChain(AmdProductRoots roots, CertificateFacts key, CertificateFacts? suppliedIntermediate, List<CertificateFacts> suppliedRoots, SnpSigningKey signer)
    {
        var keyName = KeyName(signer);
        var intermediateName = IntermediateName(signer);
        var ark = _cache.Facts(roots.Ark);
        var intermediate = suppliedIntermediate ?? _cache.Facts(Intermediate(roots, signer)!);
        var failures = new List<string>();

        // The issuer's name is what separates an ASK from an ASVK: a VCEK must come from "SEV-<product>".
        var expectedIssuer = SnpProducts.IntermediateCommonName(roots.Product, signer);
        if (!roots.Simulated && intermediate.SubjectCommonName != expectedIssuer)
        {
            failures.Add($"the {keyName} must be issued by the {intermediateName} '{expectedIssuer}', but the chain uses '{intermediate.SubjectCommonName}'");
        }

        if (!key.IssuerName.AsSpan().SequenceEqual(intermediate.SubjectName))
        {
            failures.Add($"the {keyName}'s issuer '{key.Issuer}' is not '{intermediate.Subject}'");
        }
        else if (!_cache.IsSignedBy(key, intermediate))
        {
            failures.Add($"the {keyName} certificate's signature does not verify with the key of '{intermediate.SubjectCommonName}'");
        }

        if (!_cache.IsSignedBy(intermediate, ark))
        {
            failures.Add($"'{intermediate.SubjectCommonName}' is not signed by the trusted root '{ark.SubjectCommonName}'");
        }

        foreach (var root in suppliedRoots)
        {
            if (!root.PublicKeyInfo.AsSpan().SequenceEqual(ark.PublicKeyInfo))
            {
                failures.Add($"the root certificate supplied with the evidence ('{root.SubjectCommonName}') is not the trusted '{ark.SubjectCommonName}'");
            }
        }

        return new ChainAttempt(roots, intermediate, ark, failures);
    }

    private static string IntermediateName(SnpSigningKey signer) => signer == SnpSigningKey.Vlek ? "ASVK" : "ASK";

    private static X509Certificate2? Intermediate(AmdProductRoots roots, SnpSigningKey signer) =>
        signer == SnpSigningKey.Vlek ? roots.Asvk : roots.Ask;

    private static void CheckValidity(CheckLog log, DateTimeOffset now, params (CertificateFacts Certificate, string Role)[] chain)
    {
        foreach (var (certificate, role) in chain)
        {
            if (now > certificate.NotAfter)
            {
                log.Fail(SnpChecks.CertificateValidity, $"the {role} certificate '{certificate.SubjectCommonName}' expired at {certificate.NotAfter:yyyy-MM-ddTHH:mm:ssZ} (evaluation time {now:yyyy-MM-ddTHH:mm:ssZ})");
            }
            else if (now < certificate.NotBefore)
            {
                log.Fail(SnpChecks.CertificateValidity, $"the {role} certificate '{certificate.SubjectCommonName}' is not valid before {certificate.NotBefore:yyyy-MM-ddTHH:mm:ssZ} (evaluation time {now:yyyy-MM-ddTHH:mm:ssZ})");
            }
        }
    }

    private void CheckCrl(CertificateFacts key, SnpEndorsements endorsements, ChainAttempt? chain, DateTimeOffset now, CheckLog log)
    {
        var crls = new List<CertificateRevocationList>(2);
        if (endorsements.Crl is not null)
        {
            crls.Add(endorsements.Crl);
        }

        if (Options.Crl is not null)
        {
            try
            {
                crls.Add(_cache.ParseCrl(Options.Crl));
            }
            catch (EvidenceFormatException e)
            {
                log.Fail(SnpChecks.Crl, $"the AMD CRL cannot be read: {e.Message}");
                return;
            }
        }

        if (crls.Count == 0)
        {
            if (Options.CheckCrl)
            {
                log.Fail(SnpChecks.Crl, "a CRL check was required but no AMD CRL was supplied");
            }

            return;
        }

        if (chain is null)
        {
            log.Fail(SnpChecks.Crl, "the CRL cannot be checked without a chain to a trusted AMD root");
            return;
        }

        var ark = chain.Ark;
        foreach (var crl in crls)
        {
            if (!_cache.IsCrlSignedBy(crl, ark))
            {
                log.Fail(SnpChecks.Crl, $"the CRL issued by '{crl.Issuer.Name}' is not signed by the trusted '{ark.SubjectCommonName}'");
                continue;
            }

            if (!crl.IsCurrentAt(now))
            {
                log.Fail(SnpChecks.Crl, $"the CRL is not current at {now:yyyy-MM-ddTHH:mm:ssZ} (this update {crl.ThisUpdate:yyyy-MM-ddTHH:mm:ssZ}, next update {crl.NextUpdate:yyyy-MM-ddTHH:mm:ssZ})");
            }

            foreach (var certificate in new[] { chain.Intermediate, key })
            {
                if (crl.IsRevoked(certificate.SerialNumber))
                {
                    log.Fail(SnpChecks.Crl, $"'{certificate.SubjectCommonName}' (serial {Convert.ToHexStringLower(certificate.SerialNumber)}) is revoked");
                }
            }
        }
    }

    private static void CheckSignature(SnpReport report, CertificateFacts key, CheckLog log)
    {
        if (report.SignerInfo.SigningKey == SnpSigningKey.None)
        {
            log.Fail(SnpChecks.Signature, "the report carries no signature");
            return;
        }

        if (!key.HasP384Key)
        {
            log.Fail(SnpChecks.Signature, $"the certificate '{key.SubjectCommonName}' does not hold an ECDSA P-384 key");
            return;
        }

        var signature = report.SignatureP1363();
        if (signature is null)
        {
            log.Fail(SnpChecks.Signature, "the signature's R or S does not fit in 48 bytes, so it cannot be a P-384 signature");
            return;
        }

        Span<byte> hash = stackalloc byte[SHA384.HashSizeInBytes];
        SHA384.HashData(report.SignedBytes.Span, hash);
        if (!key.VerifyHash(hash, signature))
        {
            log.Fail(SnpChecks.Signature, $"the report signature does not verify with the key of '{key.SubjectCommonName}'");
        }
    }

    private static void CheckTcb(SnpReport report, SnpKeyCertificateExtensions extensions, SnpSigningKey signer, CheckLog log)
    {
        var differences = extensions.DifferencesFrom(report.ReportedTcb);
        if (differences.Count > 0)
        {
            log.Fail(SnpChecks.KeyTcb, $"REPORTED_TCB ({report.ReportedTcb}) is not the TCB the {KeyName(signer)} certifies ({extensions.ToTcbVersion(report.Layout)}): {string.Join("; ", differences)}");
        }
    }

    private static void CheckChipId(SnpReport report, SnpKeyCertificateExtensions extensions, SnpSigningKey signer, CheckLog log)
    {
        // A VLEK belongs to a cloud provider, not a chip. A platform with MaskChipId set (a firmware setting the report
        // does not carry) reports CHIP_ID as zeros: nothing to compare, and the VCEK's signature still names the chip.
        // MASK_CHIP_KEY means the VCEK did not sign at all, which the signature check refuses.
        if (signer != SnpSigningKey.Vcek || report.SignerInfo.MaskChipKey || !report.ChipId.Span.ContainsAnyExcept((byte)0))
        {
            return;
        }

        if (extensions.HardwareId is not { } hwid)
        {
            log.Fail(SnpChecks.ChipId, "the VCEK has no hwID extension to compare CHIP_ID with");
            return;
        }

        var chipId = report.ChipId.Span;
        var matches = hwid.Length == chipId.Length
            ? hwid.Span.SequenceEqual(chipId)
            : hwid.Length == 8 && report.Layout == TcbLayout.Turin && hwid.Span.SequenceEqual(chipId[..8]);
        if (!matches)
        {
            log.Fail(SnpChecks.ChipId, $"CHIP_ID {Convert.ToHexStringLower(chipId)} is not the VCEK's hwID {Convert.ToHexStringLower(hwid.Span)}");
        }
    }

    private sealed record ChainAttempt(AmdProductRoots Roots, CertificateFacts Intermediate, CertificateFacts Ark, List<string> Failures);
}
