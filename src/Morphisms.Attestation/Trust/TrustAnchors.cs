using System.Reflection;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Trust;

/// <summary>
/// The AMD certificates for one SEV-SNP product line: the self-signed ARK, the ASK that signs
/// VCEKs and the ASVK that signs VLEKs.
/// </summary>
/// <param name="Product">Product line name as AMD's KDS spells it (Milan, Genoa, Turin), or a simulated product.</param>
/// <param name="Ark">AMD Root Key certificate (trust anchor).</param>
/// <param name="Ask">AMD SEV Key certificate (signs VCEKs).</param>
/// <param name="Asvk">AMD SEV-VLEK Key certificate (signs VLEKs); null when the product has none.</param>
/// <param name="Simulated">True for the simulated TEE's roots.</param>
public sealed record AmdProductRoots(string Product, X509Certificate2 Ark, X509Certificate2 Ask, X509Certificate2? Asvk, bool Simulated = false);

/// <summary>An Intel SGX root CA (the anchor of PCK and TCB-signing chains).</summary>
/// <param name="Certificate">The self-signed root certificate.</param>
/// <param name="Simulated">True for the simulated TEE's root.</param>
public sealed record IntelRoot(X509Certificate2 Certificate, bool Simulated = false);

/// <summary>
/// The roots a verifier trusts. <see cref="Vendor"/> holds only the real AMD and Intel roots embedded
/// in this library; simulated roots are added explicitly with <see cref="WithSimulated"/>, never by default.
/// </summary>
public sealed class TrustAnchors
{
    private static readonly Lazy<TrustAnchors> VendorAnchors = new(LoadEmbedded);

    /// <summary>Creates a set of anchors.</summary>
    public TrustAnchors(IReadOnlyList<AmdProductRoots> amd, IReadOnlyList<IntelRoot> intel)
    {
        Amd = amd;
        Intel = intel;
    }

    /// <summary>The real vendor roots: AMD Milan, Genoa and Turin; the Intel SGX Root CA.</summary>
    public static TrustAnchors Vendor => VendorAnchors.Value;

    /// <summary>AMD product roots, real first.</summary>
    public IReadOnlyList<AmdProductRoots> Amd { get; }

    /// <summary>Intel SGX roots, real first.</summary>
    public IReadOnlyList<IntelRoot> Intel { get; }

    /// <summary>Returns a copy that also trusts the given simulated roots (dev mode only).</summary>
    public TrustAnchors WithSimulated(AmdProductRoots? amd, IntelRoot? intel)
    {
        if (amd is { Simulated: false } || intel is { Simulated: false })
        {
            throw new ArgumentException("WithSimulated takes simulated roots only");
        }

        return new TrustAnchors(
            amd is null ? Amd : [.. Amd, amd],
            intel is null ? Intel : [.. Intel, intel]);
    }

    /// <summary>Finds the AMD roots for a product name (case-insensitive), or null.</summary>
    public AmdProductRoots? FindAmdProduct(string product) =>
        Amd.FirstOrDefault(r => string.Equals(r.Product, product, StringComparison.OrdinalIgnoreCase));

    private static TrustAnchors LoadEmbedded()
    {
        var amd = new List<AmdProductRoots>();
        foreach (var product in new[] { "Milan", "Genoa", "Turin" })
        {
            var key = product.ToLowerInvariant();
            amd.Add(new AmdProductRoots(
                product,
                LoadPem($"amd_ark_{key}.pem"),
                LoadPem($"amd_ask_{key}.pem"),
                LoadPem($"amd_asvk_{key}.pem")));
        }

        return new TrustAnchors(amd, [new IntelRoot(LoadPem("intel_sgx_root_ca.pem"))]);
    }

    private static X509Certificate2 LoadPem(string name)
    {
        var assembly = typeof(TrustAnchors).Assembly;
        using var stream = assembly.GetManifestResourceStream($"Morphisms.Attestation.Trust.{name}")
            ?? throw new InvalidOperationException($"embedded trust anchor {name} is missing from the build");
        using var reader = new StreamReader(stream);
        return X509Certificate2.CreateFromPem(reader.ReadToEnd());
    }
}
