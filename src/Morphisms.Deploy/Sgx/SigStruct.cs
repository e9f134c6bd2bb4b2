using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;

namespace Morphisms.Deploy.Sgx;

/// <summary>A SIGSTRUCT (or an enclave's <c>.sig</c> file) that cannot be read: wrong size, header or exponent.</summary>
public sealed class SigStructFormatException(string message) : Exception(message);

/// <summary>
/// An SGX SIGSTRUCT as <c>gramine-sgx-sign</c> writes it to <c>NAME.sig</c> (Intel SDM vol. 3D §35.13, Gramine
/// <c>sgx_arch.h</c>): the values a verifier registers for an enclave, read from the file the enclave is launched with.
/// </summary>
/// <remarks>
/// Layout (all integers little-endian): header 0–127 (header1 at 0, vendor 16, date 20, header2 24, swdefined 40),
/// modulus 128 (384 B), exponent 512 (4 B, must be 3), signature 516 (384 B), then the signed body 900–1027
/// (miscselect 900, miscmask 904, isvfamilyid 912, attributes 928, attributemask 944, enclavehash 960,
/// isvextprodid 1008, isvprodid 1024, isvsvn 1026), q1 1040 and q2 1424 (384 B each).
/// </remarks>
public sealed record SigStruct
{
    /// <summary>Size of a SIGSTRUCT in bytes.</summary>
    public const int Size = 1808;

    /// <summary>Bytes 0–15: a constant the CPU checks at EINIT.</summary>
    public static ReadOnlySpan<byte> Header1 => [0x06, 0, 0, 0, 0xe1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0];

    /// <summary>Bytes 24–39: a second constant the CPU checks at EINIT.</summary>
    public static ReadOnlySpan<byte> Header2 => [1, 1, 0, 0, 0x60, 0, 0, 0, 0x60, 0, 0, 0, 1, 0, 0, 0];

    private const int ModulusOffset = 128, ExponentOffset = 512, SignatureOffset = 516, BodyOffset = 900, BodyEnd = 1028;
    private const int Q1Offset = 1040, Q2Offset = 1424, KeySize = 384;

    /// <summary>MRENCLAVE: the enclave measurement (ENCLAVEHASH).</summary>
    public required byte[] MrEnclave { get; init; }

    /// <summary>MRSIGNER: SHA-256 of the signer's modulus as stored (little-endian, 384 bytes).</summary>
    public required byte[] MrSigner { get; init; }

    /// <summary>ISVPRODID.</summary>
    public required ushort IsvProdId { get; init; }

    /// <summary>ISVSVN.</summary>
    public required ushort IsvSvn { get; init; }

    /// <summary>MISCSELECT.</summary>
    public required uint MiscSelect { get; init; }

    /// <summary>MISCMASK.</summary>
    public required uint MiscMask { get; init; }

    /// <summary>ATTRIBUTES (flags ‖ xfrm, 16 bytes as stored).</summary>
    public required byte[] Attributes { get; init; }

    /// <summary>ATTRIBUTEMASK (16 bytes as stored).</summary>
    public required byte[] AttributeMask { get; init; }

    /// <summary>VENDOR: 0x8086 for Intel's own enclaves, 0 otherwise.</summary>
    public required uint Vendor { get; init; }

    /// <summary>DATE as stored (BCD yyyymmdd).</summary>
    public required uint Date { get; init; }

    /// <summary>Whether the DEBUG attribute (flags bit 1) is set: a debug enclave's memory is readable by the host.</summary>
    public bool Debug => (Attributes[0] & 0x02) != 0;

    /// <summary>Whether the RSA-3072 signature (and q1, q2) verified against the embedded modulus.</summary>
    public required bool SignatureValid { get; init; }

    /// <summary>Parses <paramref name="data"/> and checks its signature; a bad signature is reported in <see cref="SignatureValid"/>.</summary>
    /// <exception cref="SigStructFormatException">The data is not a SIGSTRUCT (size, headers, exponent).</exception>
    public static SigStruct Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length != Size)
        {
            throw new SigStructFormatException($"a SIGSTRUCT is {Size} bytes, this is {data.Length}");
        }

        if (!data[..16].SequenceEqual(Header1) || !data.Slice(24, 16).SequenceEqual(Header2))
        {
            throw new SigStructFormatException("not a SIGSTRUCT: HEADER/HEADER2 are not the constants EINIT requires");
        }

        var exponent = BinaryPrimitives.ReadUInt32LittleEndian(data[ExponentOffset..]);
        if (exponent != 3)
        {
            // EINIT accepts only e = 3; any other value means the file is not a SIGSTRUCT the CPU would load.
            throw new SigStructFormatException($"the RSA exponent is {exponent}; SGX requires 3");
        }

        var modulus = data.Slice(ModulusOffset, KeySize);
        return new SigStruct
        {
            MrEnclave = data.Slice(960, 32).ToArray(),
            MrSigner = SHA256.HashData(modulus),
            IsvProdId = BinaryPrimitives.ReadUInt16LittleEndian(data[1024..]),
            IsvSvn = BinaryPrimitives.ReadUInt16LittleEndian(data[1026..]),
            MiscSelect = BinaryPrimitives.ReadUInt32LittleEndian(data[900..]),
            MiscMask = BinaryPrimitives.ReadUInt32LittleEndian(data[904..]),
            Attributes = data.Slice(928, 16).ToArray(),
            AttributeMask = data.Slice(944, 16).ToArray(),
            Vendor = BinaryPrimitives.ReadUInt32LittleEndian(data[16..]),
            Date = BinaryPrimitives.ReadUInt32LittleEndian(data[20..]),
            SignatureValid = VerifySignature(data),
        };
    }

    /// <summary>The bytes the signer signs: header (0–127) followed by body (900–1027).</summary>
    public static byte[] SignedBytes(ReadOnlySpan<byte> data) => [.. data[..128], .. data[BodyOffset..BodyEnd]];

    private static bool VerifySignature(ReadOnlySpan<byte> data)
    {
        // SIGSTRUCT stores the modulus and signature little-endian; .NET's RSA wants big-endian.
        var modulus = BigEndian(data.Slice(ModulusOffset, KeySize));
        var signature = BigEndian(data.Slice(SignatureOffset, KeySize));
        if ((modulus[0] & 0x80) == 0)
        {
            return false; // not a 3072-bit modulus
        }

        using var rsa = RSA.Create();
        try
        {
            rsa.ImportParameters(new RSAParameters { Modulus = modulus, Exponent = [3] });
        }
        catch (CryptographicException)
        {
            return false;
        }

        if (!rsa.VerifyData(SignedBytes(data), signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1))
        {
            return false;
        }

        // q1 = floor(s² / n), q2 = floor((s³ − q1·s·n) / n): EINIT uses them to check the signature without
        // division, so wrong values make the enclave unloadable even though the signature itself is right.
        var n = new BigInteger(data.Slice(ModulusOffset, KeySize), isUnsigned: true);
        var s = new BigInteger(data.Slice(SignatureOffset, KeySize), isUnsigned: true);
        var q1 = BigInteger.Divide(s * s, n);
        var q2 = BigInteger.Divide((s * s * s) - (q1 * s * n), n);
        return q1 == new BigInteger(data.Slice(Q1Offset, KeySize), isUnsigned: true)
            && q2 == new BigInteger(data.Slice(Q2Offset, KeySize), isUnsigned: true);
    }

    private static byte[] BigEndian(ReadOnlySpan<byte> littleEndian)
    {
        var copy = littleEndian.ToArray();
        Array.Reverse(copy);
        return copy;
    }
}
