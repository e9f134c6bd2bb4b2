using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Trust;
using Morphisms.Attestation.Verify;

namespace Morphisms.Kms.Attest;

/// <summary>
/// The operator's AMD CRLs (<c>morph kms server --snp-crl</c>), grouped by the trusted AMD root (ARK) that signed each:
/// AMD's KDS publishes one per product line and key type (<c>/vcek/v1/{product}/crl</c> lists ASKs, <c>/vlek/...</c>
/// ASVKs), both signed by the product's ARK, so a product holds at most two. Every SNP login whose key certificate was
/// issued by one of those roots' intermediates is checked against all of that root's CRLs (the library also checks that
/// each is signed by the ARK and current: a stale CRL refuses the login rather than being skipped).
/// </summary>
public sealed class SnpRevocationLists
{
    private readonly List<(AmdProductRoots Roots, List<CertificateRevocationList> Crls)> _byRoot;

    private SnpRevocationLists(List<(AmdProductRoots, List<CertificateRevocationList>)> byRoot) => _byRoot = byRoot;

    /// <summary>The product lines (e.g. Milan) the lists cover.</summary>
    public IEnumerable<string> Products => _byRoot.Select(r => r.Roots.Product);

    /// <summary>Parses each CRL (DER or PEM) and assigns it to the AMD root in <paramref name="anchors"/> that signed it.</summary>
    /// <exception cref="ArgumentException">A CRL cannot be read, is signed by no trusted AMD root, or a root has more than two; the message names the file.</exception>
    public static SnpRevocationLists Load(IEnumerable<(string Name, byte[] Bytes)> files, TrustAnchors anchors)
    {
        var byRoot = new List<(AmdProductRoots, List<CertificateRevocationList>)>();
        foreach (var (name, bytes) in files)
        {
            CertificateRevocationList crl;
            try
            {
                crl = CertificateRevocationList.Parse(bytes);
            }
            catch (EvidenceFormatException e)
            {
                throw new ArgumentException($"{name}: not an X.509 CRL: {e.Message}");
            }

            // Checked here as well as at every login: a CRL from the wrong place should stop the start, not every login.
            var roots = anchors.Amd.FirstOrDefault(r => crl.VerifySignature(r.Ark))
                ?? throw new ArgumentException($"{name}: the CRL issued by '{crl.Issuer.Name}' is not signed by any trusted AMD root ({string.Join(", ", anchors.Amd.Select(r => r.Product))})");
            var entry = byRoot.FirstOrDefault(e => ReferenceEquals(e.Item1, roots));
            if (entry.Item2 is null)
            {
                entry = (roots, []);
                byRoot.Add(entry);
            }

            if (entry.Item2.Count == 2)
            {
                throw new ArgumentException($"{name}: a third CRL for {roots.Product}: AMD publishes one for VCEKs (ASK) and one for VLEKs (ASVK)");
            }

            entry.Item2.Add(crl);
        }

        return new SnpRevocationLists(byRoot);
    }

    /// <summary>
    /// The CRLs of the root whose ASK or ASVK issued <paramref name="keyCertificate"/>, or none when the lists do not
    /// cover its product (it is then not checked for revocation).
    /// </summary>
    public IReadOnlyList<CertificateRevocationList> For(X509Certificate2 keyCertificate)
    {
        var issuer = keyCertificate.IssuerName.RawData;
        foreach (var (roots, crls) in _byRoot)
        {
            if (roots.Ask.SubjectName.RawData.AsSpan().SequenceEqual(issuer) || (roots.Asvk?.SubjectName.RawData.AsSpan().SequenceEqual(issuer) ?? false))
            {
                return crls;
            }
        }

        return [];
    }
}
