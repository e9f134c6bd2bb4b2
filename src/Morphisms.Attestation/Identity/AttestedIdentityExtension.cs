using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Morphisms.Attestation.Identity;

/// <summary>
/// The attested-identity extension of a function certificate: what the KMS verified at attest-login, so a peer
/// holding only the certificate can see which TEE, measurement, function and revision stand behind the key.
/// <code>
/// MorphismsAttestedIdentity ::= SEQUENCE {
///     tee             UTF8String,      -- "snp", "sgx", "tdx"
///     measurement     OCTET STRING,
///     function        UTF8String,
///     revision        INTEGER,         -- the function revision whose reference values matched
///     evidenceSha256  OCTET STRING,    -- SHA-256 of the evidence
///     simulated       BOOLEAN }        -- true: simulated TEE, proves nothing about hardware
/// </code>
/// The OID is in the UUID arc (ITU-T X.667): <c>2.25.</c> + the decimal form of the Morphisms UUID
/// 193d6df9-e699-456f-a6a9-7da4e3bb98c4, so no registration is needed and no collision is possible.
/// </summary>
/// <param name="Tee">The TEE type's wire name.</param>
/// <param name="Measurement">The launch measurement.</param>
/// <param name="Function">The function name.</param>
/// <param name="Revision">The matching revision.</param>
/// <param name="EvidenceSha256">SHA-256 of the evidence (32 bytes).</param>
/// <param name="Simulated">Whether the evidence came from the simulated TEE.</param>
public sealed record AttestedIdentityExtension(string Tee, byte[] Measurement, string Function, int Revision, byte[] EvidenceSha256, bool Simulated)
{
    /// <summary>The extension's OID: <c>2.25.</c> + decimal(193d6df9-e699-456f-a6a9-7da4e3bb98c4).</summary>
    public const string Oid = "2.25.33549660584819631204027390112143481028";

    /// <summary>The DER value of the extension (the SEQUENCE above).</summary>
    public byte[] Encode()
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            writer.WriteCharacterString(UniversalTagNumber.UTF8String, Tee);
            writer.WriteOctetString(Measurement);
            writer.WriteCharacterString(UniversalTagNumber.UTF8String, Function);
            writer.WriteInteger(Revision);
            writer.WriteOctetString(EvidenceSha256);
            writer.WriteBoolean(Simulated);
        }

        return writer.Encode();
    }

    /// <summary>The extension, non-critical (relying parties that do not know it can still use the certificate for TLS).</summary>
    public X509Extension ToExtension() => new(Oid, Encode(), critical: false);

    /// <summary>Decodes the extension's DER value.</summary>
    /// <exception cref="CryptographicException">The value is not a well-formed DER MorphismsAttestedIdentity.</exception>
    public static AttestedIdentityExtension Decode(ReadOnlyMemory<byte> der)
    {
        try
        {
            var reader = new AsnReader(der, AsnEncodingRules.DER);
            var sequence = reader.ReadSequence();
            reader.ThrowIfNotEmpty();
            var tee = sequence.ReadCharacterString(UniversalTagNumber.UTF8String);
            var measurement = sequence.ReadOctetString();
            var function = sequence.ReadCharacterString(UniversalTagNumber.UTF8String);
            if (!sequence.TryReadInt32(out var revision))
            {
                throw new CryptographicException("the attested-identity revision does not fit in 32 bits");
            }

            var evidence = sequence.ReadOctetString();
            var simulated = sequence.ReadBoolean();
            sequence.ThrowIfNotEmpty();
            return new AttestedIdentityExtension(tee, measurement, function, revision, evidence, simulated);
        }
        catch (AsnContentException e)
        {
            throw new CryptographicException("malformed attested-identity extension", e);
        }
    }

    /// <summary>The extension of <paramref name="certificate"/>, or null when it has none.</summary>
    /// <exception cref="CryptographicException">The extension is present but malformed.</exception>
    public static AttestedIdentityExtension? FromCertificate(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var extension = certificate.Extensions[Oid];
        return extension is null ? null : Decode(extension.RawData);
    }
}
