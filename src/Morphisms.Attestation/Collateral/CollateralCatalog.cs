using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Verify;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// Every collateral item found in a directory, and the rule that picks one of each for a request:
/// the TCB info for the platform's FMSPC and TEE, the identity of the TEE's quoting enclave, the CRL
/// of the PCK CA, the root CA CRL — the newest of each when there are several.
/// </summary>
internal sealed class CollateralCatalog
{
    private readonly List<TcbEntry> _tcbInfos = [];
    private readonly List<IdentityEntry> _identities = [];
    private readonly List<CrlEntry> _pckCrls = [];
    private readonly List<CrlEntry> _rootCrls = [];
    private readonly List<X509Certificate2> _certificates = [];

    public bool IsEmpty => _tcbInfos.Count + _identities.Count + _pckCrls.Count + _rootCrls.Count + _certificates.Count == 0;

    public void AddDocument(SignedCollateralJson signed, CollateralDocumentKind kind, string source)
    {
        try
        {
            if (kind == CollateralDocumentKind.TcbInfo)
            {
                _tcbInfos.Add(new TcbEntry(signed, TcbInfo.Parse(signed.Body)));
            }
            else
            {
                _identities.Add(new IdentityEntry(signed, EnclaveIdentity.Parse(signed.Body)));
            }
        }
        catch (EvidenceFormatException e)
        {
            throw new EvidenceFormatException(source, e.Message);
        }
    }

    public void AddBundle(BundleContents bundle, string source)
    {
        if (bundle.TcbInfo is { } tcb)
        {
            AddDocument(tcb, CollateralDocumentKind.TcbInfo, source);
        }

        if (bundle.QeIdentity is { } qe)
        {
            AddDocument(qe, CollateralDocumentKind.EnclaveIdentity, source);
        }

        if (bundle.PckCrl is { } pck)
        {
            AddCrl(pck, source);
        }
        else
        {
            foreach (var crl in new[] { bundle.PlatformCaCrl, bundle.ProcessorCaCrl })
            {
                if (crl is not null)
                {
                    AddCrl(crl, source);
                }
            }
        }

        if (bundle.RootCaCrl is { } root)
        {
            AddCrl(root, source);
        }

        _certificates.AddRange(bundle.Certificates);
    }

    public void AddCertificates(IEnumerable<X509Certificate2> certificates) => _certificates.AddRange(certificates);

    /// <summary>
    /// Files by the issuer's name first (Intel's CRL issuers are the Root CA and the two PCK CAs), then
    /// by file name, so renamed or simulated CRLs still land in the right place.
    /// </summary>
    public void AddCrl(byte[] der, string source)
    {
        var crl = CollateralEncoding.ParseCrl(der, source);
        var issuer = crl.Issuer.Name;
        var file = Path.GetFileName(source);
        if (issuer.Contains("Root CA", StringComparison.OrdinalIgnoreCase))
        {
            _rootCrls.Add(new CrlEntry(crl, null));
        }
        else if (issuer.Contains("Processor", StringComparison.OrdinalIgnoreCase))
        {
            _pckCrls.Add(new CrlEntry(crl, PckCaType.Processor));
        }
        else if (issuer.Contains("Platform", StringComparison.OrdinalIgnoreCase))
        {
            _pckCrls.Add(new CrlEntry(crl, PckCaType.Platform));
        }
        else if (file.Contains("root", StringComparison.OrdinalIgnoreCase))
        {
            _rootCrls.Add(new CrlEntry(crl, null));
        }
        else if (file.Contains("processor", StringComparison.OrdinalIgnoreCase))
        {
            _pckCrls.Add(new CrlEntry(crl, PckCaType.Processor));
        }
        else if (file.Contains("platform", StringComparison.OrdinalIgnoreCase))
        {
            _pckCrls.Add(new CrlEntry(crl, PckCaType.Platform));
        }
        else
        {
            // A PCK CRL of unknown CA: offered for either CA; the quote verifier checks its issuer.
            _pckCrls.Add(new CrlEntry(crl, null));
        }
    }

    public DcapCollateral? Select(DcapCollateralRequest request, string origin)
    {
        var tcb = _tcbInfos
            .Where(t => t.Parsed.Tee == request.Tee && t.Parsed.IsForFmspc(request.Fmspc))
            .MaxBy(t => t.Parsed.IssueDate);
        var qe = _identities
            .Where(i => i.Parsed.Tee == request.Tee && i.Parsed.Id != "QVE")
            .MaxBy(i => i.Parsed.IssueDate);
        var pck = _pckCrls.Where(c => c.Ca == request.CaType).MaxBy(c => c.Crl.ThisUpdate)
            ?? _pckCrls.Where(c => c.Ca is null).MaxBy(c => c.Crl.ThisUpdate);
        var root = _rootCrls.MaxBy(c => c.Crl.ThisUpdate);
        if (tcb is null && qe is null && pck is null && root is null && _certificates.Count == 0)
        {
            return null;
        }

        return new DcapCollateral
        {
            TcbInfo = tcb?.Signed,
            QeIdentity = qe?.Signed,
            PckCrl = pck?.Crl.RawData,
            RootCaCrl = root?.Crl.RawData,
            TcbSigningCertificates = [.. _certificates.DistinctBy(c => c.Thumbprint)],
            Origin = origin,
        };
    }

    private sealed record TcbEntry(SignedCollateralJson Signed, TcbInfo Parsed);

    private sealed record IdentityEntry(SignedCollateralJson Signed, EnclaveIdentity Parsed);

    private sealed record CrlEntry(CertificateRevocationList Crl, PckCaType? Ca);
}
