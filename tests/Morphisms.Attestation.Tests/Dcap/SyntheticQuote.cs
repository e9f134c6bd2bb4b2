using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Tests.Dcap;

/// <summary>
/// Builds SGX v3 quotes under a PKI the test controls: the header and enclave body of a real quote,
/// a fresh attestation key, a QE report bound to it and signed by a fresh PCK key, and a PEM chain
/// leaf → PCK CA → root. Used where real vectors cannot go: revocation, foreign roots, simulated roots.
/// </summary>
public sealed class SyntheticQuote : IDisposable
{
    public static readonly DateTimeOffset NotBefore = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly DateTimeOffset NotAfter = new(2034, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly ECDsa _rootKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly ECDsa _attestationKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);

    public SyntheticQuote(string rootName = "CN=Morphisms Test SGX Root CA")
    {
        var template = DcapQuote.Parse(TestVectors.Read("sgx", "automata_icelake_00606a000000_v3_quote.bin"));
        var realLeaf = PckCertificateChainPem.Parse(template.Signature.CertificationData.Data.Span)[0];

        Root = CaRequest(rootName, _rootKey).CreateSelfSigned(NotBefore, NotAfter);
        Ca = Issue(CaRequest("CN=Morphisms Test SGX PCK Platform CA", _caKey), Root, _rootKey, 2).CopyWithPrivateKey(_caKey);
        var leafRequest = new CertificateRequest("CN=Morphisms Test SGX PCK Certificate", _leafKey, HashAlgorithmName.SHA256);
        leafRequest.CertificateExtensions.Add(realLeaf.Extensions[PckExtensions.Oid]!);
        Leaf = Issue(leafRequest, Ca, _caKey, 3);
        Template = template;
    }

    public X509Certificate2 Root { get; }

    public X509Certificate2 Ca { get; }

    public X509Certificate2 Leaf { get; }

    public DcapQuote Template { get; }

    /// <summary>Anchors that trust this PKI's root, flagged simulated, besides the vendor roots.</summary>
    public TrustAnchors SimulatedAnchors => TrustAnchors.Vendor.WithSimulated(null, new IntelRoot(X509CertificateLoader.LoadCertificate(Root.RawData), Simulated: true));

    /// <summary>
    /// A quote whose chain carries <paramref name="chain"/> (default: leaf, CA, root). Version 3 lays
    /// the QE report out directly; version 4 wraps it in certification data of type 6, as SGX v4 quotes do.
    /// </summary>
    public byte[] Build(IEnumerable<X509Certificate2>? chain = null, ushort version = 3)
    {
        var signedRegion = Template.SignedRegion.ToArray();
        BinaryPrimitives.WriteUInt16LittleEndian(signedRegion, version);
        var quoteSignature = _attestationKey.SignData(signedRegion, HashAlgorithmName.SHA256);
        var q = _attestationKey.ExportParameters(false).Q;
        var attestationKey = q.X!.Concat(q.Y!).ToArray();
        var authData = Template.Signature.QeAuthData.ToArray();

        var qeReport = Template.Signature.QeReport.Raw.ToArray();
        var binding = SHA256.HashData(attestationKey.Concat(authData).ToArray());
        qeReport.AsSpan(320, 64).Clear();
        binding.CopyTo(qeReport.AsSpan(320));
        var qeSignature = _leafKey.SignData(qeReport, HashAlgorithmName.SHA256);

        var pem = Encoding.ASCII.GetBytes(string.Concat((chain ?? [Leaf, Ca, Root]).Select(c => c.ExportCertificatePem() + "\n")) + "\0");

        using var qePart = new MemoryStream();
        qePart.Write(qeReport);
        qePart.Write(qeSignature);
        WriteUInt16(qePart, (ushort)authData.Length);
        qePart.Write(authData);
        WriteUInt16(qePart, 5);
        WriteUInt32(qePart, (uint)pem.Length);
        qePart.Write(pem);

        using var signature = new MemoryStream();
        signature.Write(quoteSignature);
        signature.Write(attestationKey);
        if (version >= 4)
        {
            WriteUInt16(signature, 6);
            WriteUInt32(signature, (uint)qePart.Length);
        }

        qePart.WriteTo(signature);

        using var quote = new MemoryStream();
        quote.Write(signedRegion);
        WriteUInt32(quote, (uint)signature.Length);
        signature.WriteTo(quote);
        return quote.ToArray();
    }

    /// <summary>A CRL of the PCK CA (or of <paramref name="issuer"/>) listing <paramref name="revoked"/>.</summary>
    public byte[] Crl(X509Certificate2? issuer, DateTimeOffset thisUpdate, params X509Certificate2[] revoked)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in revoked)
        {
            builder.AddEntry(certificate, thisUpdate);
        }

        return builder.Build(issuer ?? Ca, 1, thisUpdate.AddDays(30), HashAlgorithmName.SHA256, null, thisUpdate);
    }

    /// <summary>A CRL of the root (the self-signed root already holds its key).</summary>
    public byte[] RootCrl(DateTimeOffset thisUpdate, params X509Certificate2[] revoked) =>
        Crl(Root, thisUpdate, revoked);

    public void Dispose()
    {
        _rootKey.Dispose();
        _caKey.Dispose();
        _leafKey.Dispose();
        _attestationKey.Dispose();
    }

    private static CertificateRequest CaRequest(string name, ECDsa key)
    {
        var request = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        return request;
    }

    private static X509Certificate2 Issue(CertificateRequest request, X509Certificate2 issuer, ECDsa issuerKey, byte serial) =>
        request.Create(issuer.SubjectName, X509SignatureGenerator.CreateForECDsa(issuerKey), NotBefore, NotAfter, [serial, 0x42]);

    private static void WriteUInt16(Stream stream, ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, value);
        stream.Write(bytes);
    }

    private static void WriteUInt32(Stream stream, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        stream.Write(bytes);
    }
}
