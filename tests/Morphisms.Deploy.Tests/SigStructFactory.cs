using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;
using Morphisms.Deploy.Sgx;

namespace Morphisms.Deploy.Tests;

/// <summary>Builds signed SIGSTRUCTs with an RSA-3072 key of exponent 3, which .NET's key generator cannot make (it uses 65537).</summary>
internal static class SigStructFactory
{
    private static readonly Lazy<RSAParameters> Key = new(GenerateExponent3Key);

    public static RSAParameters Parameters => Key.Value;

    public static byte[] Build(byte[] mrEnclave, ushort prodId, ushort svn, bool debug = false)
    {
        var data = new byte[SigStruct.Size];
        SigStruct.Header1.CopyTo(data);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(20), 0x20261122);
        SigStruct.Header2.CopyTo(data.AsSpan(24));
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(900), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(904), 0xffffffff);
        data[928] = (byte)(0x04 | (debug ? 0x02 : 0)); // MODE64BIT (+ DEBUG)
        data[936] = 0x03; // XFRM: x87 + SSE
        data.AsSpan(944, 16).Fill(0xff);
        mrEnclave.CopyTo(data, 960);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(1024), prodId);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(1026), svn);
        Sign(data);
        return data;
    }

    /// <summary>Writes modulus, exponent, signature, q1 and q2 over the current header and body.</summary>
    public static void Sign(byte[] data)
    {
        var key = Key.Value;
        using var rsa = RSA.Create();
        rsa.ImportParameters(key);
        var signature = rsa.SignData(SigStruct.SignedBytes(data), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        LittleEndian(key.Modulus!).CopyTo(data, 128);
        BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(512), 3);
        LittleEndian(signature).CopyTo(data, 516);
        var n = new BigInteger(key.Modulus, isUnsigned: true, isBigEndian: true);
        var s = new BigInteger(signature, isUnsigned: true, isBigEndian: true);
        var q1 = BigInteger.Divide(s * s, n);
        var q2 = BigInteger.Divide((s * s * s) - (q1 * s * n), n);
        Fixed(q1).CopyTo(data, 1040);
        Fixed(q2).CopyTo(data, 1424);
    }

    private static byte[] Fixed(BigInteger value)
    {
        var bytes = new byte[384];
        value.ToByteArray(isUnsigned: true).CopyTo(bytes, 0);
        return bytes;
    }

    private static byte[] LittleEndian(byte[] bigEndian)
    {
        var copy = (byte[])bigEndian.Clone();
        Array.Reverse(copy);
        return copy;
    }

    // p, q ≡ 2 (mod 3) makes gcd(3, (p−1)(q−1)) = 1, so e = 3 is invertible.
    private static RSAParameters GenerateExponent3Key()
    {
        while (true)
        {
            var p = Prime(1536);
            var q = Prime(1536);
            var n = p * q;
            if (p == q || n.GetBitLength() != 3072)
            {
                continue;
            }

            var phi = (p - 1) * (q - 1);
            var d = ModInverse(3, phi);
            return new RSAParameters
            {
                Modulus = Be(n, 384),
                Exponent = [3],
                D = Be(d, 384),
                P = Be(p, 192),
                Q = Be(q, 192),
                DP = Be(d % (p - 1), 192),
                DQ = Be(d % (q - 1), 192),
                InverseQ = Be(ModInverse(q, p), 192),
            };
        }
    }

    private static readonly int[] SmallPrimes = Enumerable.Range(3, 2000).Where(i => Enumerable.Range(2, (int)Math.Sqrt(i) - 1).All(j => i % j != 0)).ToArray();

    private static BigInteger Prime(int bits)
    {
        var bytes = new byte[bits / 8];
        while (true)
        {
            RandomNumberGenerator.Fill(bytes);
            bytes[0] |= 0xc0; // top two bits set: the product of two such primes has exactly 2·bits bits
            bytes[^1] |= 1;
            var candidate = new BigInteger(bytes, isUnsigned: true, isBigEndian: true);
            candidate += (2 - (int)(candidate % 3) + 3) % 3; // ≡ 2 mod 3
            if (candidate.IsEven)
            {
                candidate += 3; // stays ≡ 2 mod 3 and becomes odd
            }

            if (SmallPrimes.Any(sp => candidate % sp == 0) || !MillerRabin(candidate, 32))
            {
                continue;
            }

            return candidate;
        }
    }

    private static bool MillerRabin(BigInteger n, int rounds)
    {
        var d = n - 1;
        var r = 0;
        while (d.IsEven)
        {
            d >>= 1;
            r++;
        }

        var buffer = new byte[n.GetByteCount(isUnsigned: true)];
        for (var i = 0; i < rounds; i++)
        {
            BigInteger a;
            do
            {
                RandomNumberGenerator.Fill(buffer);
                a = new BigInteger(buffer, isUnsigned: true) % n;
            }
            while (a < 2 || a > n - 2);

            var x = BigInteger.ModPow(a, d, n);
            if (x.IsOne || x == n - 1)
            {
                continue;
            }

            var composite = true;
            for (var j = 1; j < r && composite; j++)
            {
                x = BigInteger.ModPow(x, 2, n);
                composite = x != n - 1;
            }

            if (composite)
            {
                return false;
            }
        }

        return true;
    }

    private static BigInteger ModInverse(BigInteger a, BigInteger m)
    {
        BigInteger oldR = a, r = m, oldS = 1, s = 0;
        while (!r.IsZero)
        {
            var quotient = BigInteger.Divide(oldR, r);
            (oldR, r) = (r, oldR - (quotient * r));
            (oldS, s) = (s, oldS - (quotient * s));
        }

        return ((oldS % m) + m) % m;
    }

    private static byte[] Be(BigInteger value, int length)
    {
        var raw = value.ToByteArray(isUnsigned: true, isBigEndian: true);
        var result = new byte[length];
        raw.CopyTo(result, length - raw.Length);
        return result;
    }
}
