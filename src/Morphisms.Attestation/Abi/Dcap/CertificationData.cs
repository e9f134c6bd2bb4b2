namespace Morphisms.Attestation.Abi.Dcap;

/// <summary>A certification data entry: its type and the bytes its size field covers.</summary>
/// <param name="Type">Raw type value (see <see cref="CertificationDataType"/>).</param>
/// <param name="Data">The entry's payload.</param>
public sealed record CertificationData(ushort Type, ReadOnlyMemory<byte> Data)
{
    /// <summary>True when this entry is a PEM PCK certificate chain (type 5).</summary>
    public bool IsPckCertificateChain => Type == (ushort)CertificationDataType.PckCertificateChain;

    internal static CertificationData Read(ref WireReader reader, string name)
    {
        var type = reader.ReadUInt16($"{name}.type");
        var size = reader.ReadUInt32($"{name}.size");
        return new CertificationData(type, reader.ReadSized(size, $"{name}.data"));
    }
}
