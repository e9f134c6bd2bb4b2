using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Simulated;

/// <summary>
/// Builds the certificates of the simulated TEE with the same extensions the real vendor
/// certificates carry, so the real verifiers parse and check them unchanged.
/// </summary>
internal static class SimulatedCertificates
{
    internal const string AmdTcbArc = "1.3.6.1.4.1.3704.1.3";
    internal const string AmdProductNameOid = "1.3.6.1.4.1.3704.1.2";
    internal const string AmdHwIdOid = "1.3.6.1.4.1.3704.1.4";
    internal const string SgxExtensionsOid = "1.2.840.113741.1.13.1";

    public static X509Certificate2 SelfSignedRsaPss(RSA key, string subject, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        AddCaExtensions(request, pathLength: 1);
        return request.CreateSelfSigned(notBefore, notAfter);
    }

    public static X509Certificate2 SelfSignedEcdsa(ECDsa key, string subject, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        AddCaExtensions(request, pathLength: 1);
        return request.CreateSelfSigned(notBefore, notAfter);
    }

    public static X509Certificate2 IssueRsaPssCa(X509Certificate2 issuer, RSA issuerKey, RSA subjectKey, string subject, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest(subject, subjectKey, HashAlgorithmName.SHA384, RSASignaturePadding.Pss);
        AddCaExtensions(request, pathLength: 0);
        var generator = X509SignatureGenerator.CreateForRSA(issuerKey, RSASignaturePadding.Pss);
        return request.Create(issuer.SubjectName, generator, notBefore, notAfter, NewSerial());
    }

    public static X509Certificate2 IssueEcdsaCa(X509Certificate2 issuer, ECDsa issuerKey, ECDsa subjectKey, string subject, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest(subject, subjectKey, HashAlgorithmName.SHA256);
        AddCaExtensions(request, pathLength: 0);
        var generator = X509SignatureGenerator.CreateForECDsa(issuerKey);
        return request.Create(issuer.SubjectName, generator, notBefore, notAfter, NewSerial());
    }

    /// <summary>A VCEK-like leaf: P-384 key, signed RSA-PSS by the ASK, with AMD's TCB, hwID and productName extensions.</summary>
    public static X509Certificate2 IssueVcek(X509Certificate2 ask, RSA askKey, ECDsa vcekKey, string product, SimulatedTcb tcb, byte[] chipId, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest("CN=SEV-VCEK", vcekKey, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509Extension(AmdProductNameOid, EncodeIa5(product), false));
        request.CertificateExtensions.Add(new X509Extension($"{AmdTcbArc}.1", EncodeInteger(tcb.Bootloader), false));
        request.CertificateExtensions.Add(new X509Extension($"{AmdTcbArc}.2", EncodeInteger(tcb.Tee), false));
        request.CertificateExtensions.Add(new X509Extension($"{AmdTcbArc}.3", EncodeInteger(tcb.Snp), false));
        for (var reserved = 4; reserved <= 7; reserved++)
        {
            request.CertificateExtensions.Add(new X509Extension($"{AmdTcbArc}.{reserved}", EncodeInteger(0), false));
        }

        request.CertificateExtensions.Add(new X509Extension($"{AmdTcbArc}.8", EncodeInteger(tcb.Microcode), false));
        request.CertificateExtensions.Add(new X509Extension(AmdHwIdOid, EncodeOctets(chipId), false));
        var generator = X509SignatureGenerator.CreateForRSA(askKey, RSASignaturePadding.Pss);
        return request.Create(ask.SubjectName, generator, notBefore, notAfter, NewSerial());
    }

    /// <summary>A PCK-like leaf: P-256 key signed by the PCK CA, with Intel's SGX extensions (PPID, TCB, PCEID, FMSPC, type).</summary>
    public static X509Certificate2 IssuePck(X509Certificate2 pckCa, ECDsa pckCaKey, ECDsa pckKey, SimulatedPlatform platform, DateTimeOffset notBefore, DateTimeOffset notAfter)
    {
        var request = new CertificateRequest("CN=Intel SGX PCK Certificate, O=Morphisms Simulated TEE", pckKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509Extension(SgxExtensionsOid, EncodeSgxExtensions(platform), false));
        var generator = X509SignatureGenerator.CreateForECDsa(pckCaKey);
        return request.Create(pckCa.SubjectName, generator, notBefore, notAfter, NewSerial());
    }

    /// <summary>An issuer's empty CRL, valid from <paramref name="thisUpdate"/> to <paramref name="nextUpdate"/>.</summary>
    public static byte[] EmptyCrl(X509Certificate2 issuerWithKey, DateTimeOffset thisUpdate, DateTimeOffset nextUpdate)
    {
        var builder = new CertificateRevocationListBuilder();
        var padding = issuerWithKey.GetRSAPublicKey() is null ? null : RSASignaturePadding.Pss;
        return builder.Build(issuerWithKey, 1, nextUpdate, HashAlgorithmName.SHA256, padding, thisUpdate);
    }

    private static byte[] EncodeSgxExtensions(SimulatedPlatform platform)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            WriteOctetsEntry(writer, $"{SgxExtensionsOid}.1", platform.Ppid);
            using (writer.PushSequence())
            {
                writer.WriteObjectIdentifier($"{SgxExtensionsOid}.2");
                using (writer.PushSequence())
                {
                    for (var i = 0; i < 16; i++)
                    {
                        using (writer.PushSequence())
                        {
                            writer.WriteObjectIdentifier($"{SgxExtensionsOid}.2.{i + 1}");
                            writer.WriteInteger(platform.SgxTcbComponents[i]);
                        }
                    }

                    using (writer.PushSequence())
                    {
                        writer.WriteObjectIdentifier($"{SgxExtensionsOid}.2.17");
                        writer.WriteInteger(platform.PceSvn);
                    }

                    WriteOctetsEntry(writer, $"{SgxExtensionsOid}.2.18", platform.SgxTcbComponents);
                }
            }

            WriteOctetsEntry(writer, $"{SgxExtensionsOid}.3", platform.PceId);
            WriteOctetsEntry(writer, $"{SgxExtensionsOid}.4", platform.Fmspc);
            using (writer.PushSequence())
            {
                writer.WriteObjectIdentifier($"{SgxExtensionsOid}.5");
                writer.WriteEnumeratedValue(SgxType.Standard);
            }
        }

        return writer.Encode();
    }

    private enum SgxType
    {
        Standard = 0,
    }

    private static void WriteOctetsEntry(AsnWriter writer, string oid, byte[] value)
    {
        using (writer.PushSequence())
        {
            writer.WriteObjectIdentifier(oid);
            writer.WriteOctetString(value);
        }
    }

    private static void AddCaExtensions(CertificateRequest request, int pathLength)
    {
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, pathLength, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
    }

    private static byte[] EncodeInteger(long value)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteInteger(value);
        return writer.Encode();
    }

    private static byte[] EncodeOctets(byte[] value)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteOctetString(value);
        return writer.Encode();
    }

    private static byte[] EncodeIa5(string value)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        writer.WriteCharacterString(UniversalTagNumber.IA5String, value);
        return writer.Encode();
    }

    private static byte[] NewSerial()
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F; // keep it positive
        return serial;
    }
}
