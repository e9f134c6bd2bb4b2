using System.Security.Cryptography;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Seal;

namespace Morphisms.Kms.Tests.Barrier;

/// <summary>
/// The temporary plaintext copies of keys (the keyring's JSON, a decoded unseal share) are zeroed once used, so a
/// seal's wipe is not undone by copies lying in memory. Each case hands in the scratch buffer and checks it after.
/// </summary>
public class PlaintextCopyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 22, 0, 0, 0, TimeSpan.Zero);
    private static readonly byte[] RootKey = RandomNumberGenerator.GetBytes(32);

    [Fact]
    public void Wrapping_the_keyring_zeroes_its_plaintext()
    {
        var keyring = Keyring.Create(Now);
        var scratch = new byte[4096];

        var wrapped = BarrierStorage.WrapKeyring(RootKey, keyring, scratch);

        Assert.All(scratch, b => Assert.Equal(0, b));
        Assert.Equal(keyring.Key(1), BarrierStorage.UnwrapKeyring(RootKey, wrapped).Key(1));
    }

    [Fact]
    public void Wrapping_a_keyring_larger_than_the_scratch_zeroes_the_buffer_it_outgrew()
    {
        // About 110 bytes a term: the JSON fills the 512-byte scratch and moves on to larger buffers.
        var keyring = Keyring.Create(Now);
        for (var i = 0; i < 60; i++)
        {
            keyring = keyring.Rotate(Now.AddDays(i + 1));
        }

        var scratch = new byte[512];
        var wrapped = BarrierStorage.WrapKeyring(RootKey, keyring, scratch);

        Assert.All(scratch, b => Assert.Equal(0, b));
        var unwrapped = BarrierStorage.UnwrapKeyring(RootKey, wrapped);
        Assert.Equal(61u, unwrapped.ActiveTerm);
        Assert.All(keyring.Terms, t => Assert.Equal(t.Key, unwrapped.Key(t.Term)));
    }

    [Fact]
    public void Unwrapping_the_keyring_zeroes_its_plaintext()
    {
        var keyring = Keyring.Create(Now).Rotate(Now.AddDays(1));
        var wrapped = BarrierStorage.WrapKeyring(RootKey, keyring);
        var scratch = new byte[wrapped.Length - AesGcmEnvelope.Overhead];

        var unwrapped = BarrierStorage.UnwrapKeyring(RootKey, wrapped, scratch);

        Assert.All(scratch, b => Assert.Equal(0, b));
        Assert.Equal(keyring.Key(1), unwrapped.Key(1));
        Assert.Equal(keyring.Key(2), unwrapped.Key(2));
    }

    [Fact]
    public void Decoding_a_base64_unseal_share_zeroes_the_decode_buffer()
    {
        var share = RandomNumberGenerator.GetBytes(33);
        var encoded = Convert.ToBase64String(share);
        var scratch = new byte[encoded.Length];

        Assert.Equal(share, SealRoutes.DecodeKey(encoded, scratch));
        Assert.All(scratch, b => Assert.Equal(0, b));
    }
}
