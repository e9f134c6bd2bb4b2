using System.Security.Cryptography;

namespace Morphisms.Kms.Seal;

/// <summary>
/// Shamir's secret sharing over GF(2^8) with the AES polynomial x^8+x^4+x^3+x+1, byte-compatible with Vault's
/// <c>shamir</c> package: each share is the y-values for every secret byte followed by one trailing x byte.
/// Field arithmetic is branch-free and table-free, so timing does not depend on secret bytes.
/// </summary>
internal static class Shamir
{
    /// <summary>The most shares GF(2^8) can hold (x ranges over 1..255).</summary>
    public const int MaxShares = 255;

    /// <summary>Splits <paramref name="secret"/> into <paramref name="parts"/> shares, any <paramref name="threshold"/> of which recover it.</summary>
    /// <exception cref="ArgumentException">The parameters are out of range.</exception>
    public static byte[][] Split(ReadOnlySpan<byte> secret, int parts, int threshold)
    {
        if (secret.Length == 0)
        {
            throw new ArgumentException("cannot split an empty secret");
        }

        if (parts < threshold)
        {
            throw new ArgumentException("parts cannot be less than threshold");
        }

        if (parts > MaxShares)
        {
            throw new ArgumentException($"parts cannot exceed {MaxShares}");
        }

        if (threshold < 2)
        {
            throw new ArgumentException("threshold must be at least 2");
        }

        // Distinct, non-zero, unpredictable x coordinates, as Vault picks them.
        var xs = Enumerable.Range(1, MaxShares).Select(i => (byte)i).ToArray();
        RandomNumberGenerator.Shuffle(xs.AsSpan());

        var shares = new byte[parts][];
        for (var i = 0; i < parts; i++)
        {
            shares[i] = new byte[secret.Length + 1];
            shares[i][secret.Length] = xs[i];
        }

        var coefficients = new byte[threshold];
        try
        {
            for (var b = 0; b < secret.Length; b++)
            {
                coefficients[0] = secret[b];
                RandomNumberGenerator.Fill(coefficients.AsSpan(1));
                for (var i = 0; i < parts; i++)
                {
                    shares[i][b] = Evaluate(coefficients, xs[i]);
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(coefficients);
        }

        return shares;
    }

    /// <summary>Recombines shares made by <see cref="Split"/>. Too few or wrong shares yield a wrong secret, not an error.</summary>
    /// <exception cref="ArgumentException">The shares are malformed: fewer than two, unequal lengths, or a repeated or zero x.</exception>
    public static byte[] Combine(IReadOnlyList<byte[]> parts)
    {
        if (parts.Count < 2)
        {
            throw new ArgumentException("less than two parts cannot be used to reconstruct the secret");
        }

        var length = parts[0].Length;
        if (length < 2)
        {
            throw new ArgumentException("parts must be at least two bytes");
        }

        var xs = new byte[parts.Count];
        for (var i = 0; i < parts.Count; i++)
        {
            if (parts[i].Length != length)
            {
                throw new ArgumentException("all parts must be the same length");
            }

            xs[i] = parts[i][length - 1];
            if (xs[i] == 0)
            {
                throw new ArgumentException("a part has x coordinate zero");
            }

            for (var j = 0; j < i; j++)
            {
                if (xs[j] == xs[i])
                {
                    throw new ArgumentException("duplicate part detected");
                }
            }
        }

        // The Lagrange basis at x = 0 depends only on the (public) x coordinates.
        var basis = new byte[parts.Count];
        for (var i = 0; i < parts.Count; i++)
        {
            byte term = 1;
            for (var j = 0; j < parts.Count; j++)
            {
                if (i != j)
                {
                    term = Mul(term, Div(xs[j], (byte)(xs[i] ^ xs[j])));
                }
            }

            basis[i] = term;
        }

        var secret = new byte[length - 1];
        for (var b = 0; b < secret.Length; b++)
        {
            byte acc = 0;
            for (var i = 0; i < parts.Count; i++)
            {
                acc ^= Mul(parts[i][b], basis[i]);
            }

            secret[b] = acc;
        }

        return secret;
    }

    /// <summary>Multiplies in GF(2^8) by shift-and-add with masks instead of branches.</summary>
    internal static byte Mul(byte a, byte b)
    {
        int result = 0;
        int aa = a;
        for (var i = 0; i < 8; i++)
        {
            result ^= aa & -((b >> i) & 1);
            var carry = (aa >> 7) & 1;
            aa = ((aa << 1) ^ (0x1B & -carry)) & 0xFF;
        }

        return (byte)result;
    }

    /// <summary>The multiplicative inverse as a^254 (Fermat), with a fixed square-and-multiply chain; maps 0 to 0.</summary>
    internal static byte Inverse(byte a)
    {
        // 254 = 0b11111110: square seven times, multiplying in a after each of the first six squarings.
        byte result = a;
        for (var i = 0; i < 6; i++)
        {
            result = Mul(result, result);
            result = Mul(result, a);
        }

        return Mul(result, result);
    }

    /// <summary>Divides in GF(2^8).</summary>
    /// <exception cref="DivideByZeroException"><paramref name="b"/> is zero.</exception>
    internal static byte Div(byte a, byte b) => b == 0 ? throw new DivideByZeroException() : Mul(a, Inverse(b));

    private static byte Evaluate(ReadOnlySpan<byte> coefficients, byte x)
    {
        // Horner's rule from the highest coefficient down.
        byte acc = coefficients[^1];
        for (var i = coefficients.Length - 2; i >= 0; i--)
        {
            acc = (byte)(Mul(acc, x) ^ coefficients[i]);
        }

        return acc;
    }
}
