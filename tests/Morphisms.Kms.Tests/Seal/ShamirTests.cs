using System.Security.Cryptography;
using Morphisms.Kms.Seal;

namespace Morphisms.Kms.Tests.Seal;

public class ShamirTests
{
    [Theory]
    [InlineData(2, 2)]
    [InlineData(3, 2)]
    [InlineData(5, 3)]
    [InlineData(10, 10)]
    [InlineData(255, 7)]
    public void Any_threshold_subset_recovers_the_secret(int parts, int threshold)
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        var shares = Shamir.Split(secret, parts, threshold);

        Assert.Equal(parts, shares.Length);
        Assert.All(shares, s => Assert.Equal(33, s.Length));
        Assert.Equal(parts, shares.Select(s => s[^1]).Distinct().Count());
        Assert.DoesNotContain(shares, s => s[^1] == 0);
        for (var trial = 0; trial < 5; trial++)
        {
            var subset = shares.OrderBy(_ => RandomNumberGenerator.GetInt32(1000)).Take(threshold).ToList();
            Assert.Equal(secret, Shamir.Combine(subset));
        }

        Assert.Equal(secret, Shamir.Combine(shares));
    }

    [Fact]
    public void Fewer_than_threshold_shares_give_a_different_secret()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        var shares = Shamir.Split(secret, 5, 3);
        Assert.NotEqual(secret, Shamir.Combine(shares.Take(2).ToList()));
    }

    [Fact]
    public void A_tampered_share_gives_a_different_secret()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        var shares = Shamir.Split(secret, 3, 2);
        shares[0][5] ^= 1;
        Assert.NotEqual(secret, Shamir.Combine(shares.Take(2).ToList()));
    }

    [Fact]
    public void Malformed_share_sets_are_rejected()
    {
        var shares = Shamir.Split(RandomNumberGenerator.GetBytes(16), 3, 2);
        Assert.Contains("duplicate", Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0], shares[0].ToArray()])).Message);
        Assert.Contains("less than two", Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0]])).Message);
        Assert.Contains("same length", Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0], shares[1][1..]])).Message);
        var zeroX = shares[1].ToArray();
        zeroX[^1] = 0;
        Assert.Contains("zero", Assert.Throws<ArgumentException>(() => Shamir.Combine([shares[0], zeroX])).Message);
    }

    [Theory]
    [InlineData(0, 2, 2)]
    [InlineData(32, 1, 2)]
    [InlineData(32, 3, 1)]
    [InlineData(32, 256, 2)]
    public void Bad_split_parameters_are_rejected(int length, int parts, int threshold) =>
        Assert.Throws<ArgumentException>(() => Shamir.Split(new byte[length], parts, threshold));

    [Fact]
    public void Field_multiplication_matches_a_reference_for_all_pairs()
    {
        for (var a = 0; a < 256; a++)
        {
            for (var b = 0; b < 256; b++)
            {
                Assert.Equal(ReferenceMul((byte)a, (byte)b), Shamir.Mul((byte)a, (byte)b));
            }
        }
    }

    [Fact]
    public void Every_nonzero_element_has_an_inverse()
    {
        Assert.Equal(0, Shamir.Inverse(0));
        for (var a = 1; a < 256; a++)
        {
            Assert.Equal(1, Shamir.Mul((byte)a, Shamir.Inverse((byte)a)));
            Assert.Equal((byte)a, Shamir.Div(Shamir.Mul((byte)a, 0x53), 0x53));
        }
    }

    [Fact]
    public void Known_vector_in_the_AES_field() =>

        // FIPS-197 section 4.2: {57} x {83} = {c1}.
        Assert.Equal(0xC1, Shamir.Mul(0x57, 0x83));

    private static byte ReferenceMul(byte a, byte b)
    {
        byte p = 0;
        for (var i = 0; i < 8; i++)
        {
            if ((b & 1) != 0)
            {
                p ^= a;
            }

            var hi = (a & 0x80) != 0;
            a <<= 1;
            if (hi)
            {
                a ^= 0x1B;
            }

            b >>= 1;
        }

        return p;
    }
}
