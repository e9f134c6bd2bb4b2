using System.Buffers.Binary;
using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Abi.Snp;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Tests.Snp;

/// <summary>
/// An AMD-shaped PKI made in the test (ARK, ASK, ASVK, VCEK, VLEK) that can sign reports and CRLs,
/// for what the real vectors cannot exercise: CRLs, Turin, version 5 and the simulated flag.
/// </summary>
public sealed class FakeAmd
{
    public static readonly DateTimeOffset Now = new(2026, 1, 15, 0, 0, 0, TimeSpan.Zero);

    // RSA key generation is what makes these slow, so every test shares one platform per kind.
    private static readonly Lazy<FakeAmd> SharedMilan = new(() => new FakeAmd("Milan"));
    private static readonly Lazy<FakeAmd> SharedTurin = new(() => new FakeAmd("Turin"));
    private static readonly Lazy<FakeAmd> SharedGenoaNotSimulated = new(() => new FakeAmd("Genoa", simulated: false));

    private readonly Lock _sign = new();

    private readonly RSA _arkKey = RSA.Create(2048);
    private readonly RSA _askKey = RSA.Create(2048);
    private readonly RSA _asvkKey = RSA.Create(2048);

    /// <summary>A simulated Milan platform.</summary>
    public static FakeAmd Milan => SharedMilan.Value;

    /// <summary>A simulated Turin platform (new TCB layout, 8-byte hwID).</summary>
    public static FakeAmd Turin => SharedTurin.Value;

    /// <summary>A Genoa platform whose roots are not marked simulated, to exercise the real-product rules.</summary>
    public static FakeAmd GenoaNotSimulated => SharedGenoaNotSimulated.Value;

    private FakeAmd(string product, bool simulated = true)
    {
        Product = product;
        IsTurin = product == SnpProducts.Turin;
        ChipId = RandomNumberGenerator.GetBytes(64);
        if (IsTurin)
        {
            ChipId.AsSpan(8).Clear();
        }

        Tcb = IsTurin ? TcbVersion.FromParts(4, 1, 22, 80, fmc: 3) : TcbVersion.FromParts(4, 0, 22, 213);
        var from = Now.AddYears(-1);
        var until = Now.AddYears(5);
        Ark = CaCertificate(null, _arkKey, _arkKey, $"CN=ARK-{product}, O=Test AMD", from, until.AddYears(10));
        Ask = CaCertificate(Ark, _arkKey, _askKey, $"CN=SEV-{product}, O=Test AMD", from, until.AddYears(5));
        Asvk = CaCertificate(Ark, _arkKey, _asvkKey, $"CN=SEV-VLEK-{product}, O=Test AMD", from, until.AddYears(5));
        Vcek = KeyCertificate(Ask, _askKey, VcekKey, "CN=SEV-VCEK", $"{product}-B0", hwid: IsTurin ? ChipId[..8] : ChipId, cspId: null, from, until);
        Vlek = KeyCertificate(Asvk, _asvkKey, VlekKey, "CN=SEV-VLEK", product, hwid: null, cspId: "CN=test-csp.example", from, until);
        Roots = new AmdProductRoots(product, Ark, Ask, Asvk, simulated);
        Anchors = new TrustAnchors([Roots], []);
    }

    public string Product { get; }

    public bool IsTurin { get; }

    public byte[] ChipId { get; }

    public TcbVersion Tcb { get; }

    public ECDsa VcekKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP384);

    public ECDsa VlekKey { get; } = ECDsa.Create(ECCurve.NamedCurves.nistP384);

    public X509Certificate2 Ark { get; }

    public X509Certificate2 Ask { get; }

    public X509Certificate2 Asvk { get; }

    public X509Certificate2 Vcek { get; }

    public X509Certificate2 Vlek { get; }

    public AmdProductRoots Roots { get; }

    public TrustAnchors Anchors { get; }

    /// <summary>A signed report. <paramref name="edit"/> changes the unsigned bytes before signing.</summary>
    public byte[] Report(uint version = 3, SnpSigningKey signer = SnpSigningKey.Vcek, Action<byte[]>? edit = null)
    {
        var bytes = SnpReportTests.MinimalReport(version);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(0x48), (uint)signer << 2);
        if (version >= 3)
        {
            (bytes[0x188], bytes[0x189], bytes[0x18A]) = Product switch
            {
                SnpProducts.Turin => ((byte)0x1A, (byte)0x02, (byte)0),
                SnpProducts.Genoa => ((byte)0x19, (byte)0x11, (byte)1),
                _ => ((byte)0x19, (byte)0x01, (byte)1),
            };
        }

        foreach (var offset in new[] { 0x38, 0x180, 0x1E0, 0x1F0 })
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(offset), Tcb.Raw);
        }

        bytes.AsSpan(0x160, 32).Fill(0xFF);
        if (signer == SnpSigningKey.Vcek)
        {
            ChipId.CopyTo(bytes, 0x1A0);
        }

        (bytes[0x1EA], bytes[0x1E9], bytes[0x1E8]) = (1, 55, 40);
        (bytes[0x1EE], bytes[0x1ED], bytes[0x1EC]) = (1, 55, 40);
        edit?.Invoke(bytes);
        lock (_sign)
        {
            return Sign(bytes, signer == SnpSigningKey.Vlek ? VlekKey : VcekKey);
        }
    }

    public static byte[] Sign(byte[] report, ECDsa key)
    {
        var signature = key.SignData(report.AsSpan(0, 0x2A0), HashAlgorithmName.SHA384);
        var r = signature.AsSpan(0, 48).ToArray();
        var s = signature.AsSpan(48, 48).ToArray();
        Array.Reverse(r);
        Array.Reverse(s);
        report.AsSpan(0x2A0, 144).Clear();
        r.CopyTo(report, 0x2A0);
        s.CopyTo(report, 0x2A0 + 72);
        return report;
    }

    /// <summary>A CRL signed by the ARK (or <paramref name="signer"/>), listing <paramref name="revoked"/>.</summary>
    public byte[] Crl(DateTimeOffset thisUpdate, DateTimeOffset nextUpdate, X509Certificate2? signer = null, params X509Certificate2[] revoked)
    {
        var builder = new CertificateRevocationListBuilder();
        foreach (var certificate in revoked)
        {
            builder.AddEntry(certificate, thisUpdate);
        }

        lock (_sign)
        {
            return builder.Build(signer ?? ArkWithKey(), 1, nextUpdate, HashAlgorithmName.SHA384, RSASignaturePadding.Pss, thisUpdate);
        }
    }

    public X509Certificate2 ArkWithKey() => Ark.HasPrivateKey ? Ark : Ark.CopyWithPrivateKey(_arkKey);

    public X509Certificate2 AskWithKey() => Ask.CopyWithPrivateKey(_askKey);

    private static X509Certificate2 CaCertificate(X509Certificate2? issuer, RSA issuerKey, RSA key, string subject, DateTimeOffset from, DateTimeOffset until)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        if (issuer is null)
        {
            return request.CreateSelfSigned(from, until);
        }

        var generator = X509SignatureGenerator.CreateForRSA(issuerKey, RSASignaturePadding.Pss);
        return request.Create(issuer.SubjectName, generator, from, until, RandomNumberGenerator.GetBytes(8));
    }

    private X509Certificate2 KeyCertificate(X509Certificate2 issuer, RSA issuerKey, ECDsa key, string subject, string productName, byte[]? hwid, string? cspId, DateTimeOffset from, DateTimeOffset until)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA384);
        const string arc = "1.3.6.1.4.1.3704.1.";
        request.CertificateExtensions.Add(new X509Extension(arc + "1", Integer(0), false));
        request.CertificateExtensions.Add(new X509Extension(arc + "2", Ia5(productName), false));
        request.CertificateExtensions.Add(new X509Extension(arc + "3.1", Integer(Tcb.Bootloader), false));
        request.CertificateExtensions.Add(new X509Extension(arc + "3.2", Integer(Tcb.Tee), false));
        request.CertificateExtensions.Add(new X509Extension(arc + "3.3", Integer(Tcb.Snp), false));
        request.CertificateExtensions.Add(new X509Extension(arc + "3.8", Integer(Tcb.Microcode), false));
        if (Tcb.Fmc is { } fmc)
        {
            request.CertificateExtensions.Add(new X509Extension(arc + "3.9", Integer(fmc), false));
        }

        if (hwid is not null)
        {
            request.CertificateExtensions.Add(new X509Extension(arc + "4", Octets(hwid), false));
        }

        if (cspId is not null)
        {
            request.CertificateExtensions.Add(new X509Extension(arc + "5", Ia5(cspId), false));
        }

        var generator = X509SignatureGenerator.CreateForRSA(issuerKey, RSASignaturePadding.Pss);
        return request.Create(issuer.SubjectName, generator, from, until, RandomNumberGenerator.GetBytes(8));
    }

    private static byte[] Integer(long value)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteInteger(value);
        return writer.Encode();
    }

    private static byte[] Ia5(string value)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteCharacterString(UniversalTagNumber.IA5String, value);
        return writer.Encode();
    }

    private static byte[] Octets(byte[] value)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteOctetString(value);
        return writer.Encode();
    }
}
