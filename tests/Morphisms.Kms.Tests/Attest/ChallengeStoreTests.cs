using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Attest;
using Morphisms.Kms.Http;

namespace Morphisms.Kms.Tests.Attest;

public class ChallengeStoreTests
{
    private readonly FakeTimeProvider _time = new(SimulatedTees.Epoch);

    [Fact]
    public void A_nonce_is_good_once_for_its_function_until_it_expires()
    {
        var store = new ChallengeStore(_time, TimeSpan.FromSeconds(60), 10);
        var (nonce, expires) = store.Issue("signer");
        Assert.Equal(32, nonce.Length);
        Assert.Equal(SimulatedTees.Epoch.AddSeconds(60), expires);

        Assert.Equal(NonceCheck.Valid, store.Consume(nonce, "signer"));
        Assert.Equal(NonceCheck.AlreadyUsed, store.Consume(nonce, "signer"));

        var other = store.Issue("signer").Nonce;
        Assert.Equal(NonceCheck.OtherFunction, store.Consume(other, "verifier"));
        Assert.Equal(NonceCheck.AlreadyUsed, store.Consume(other, "signer"));

        var late = store.Issue("signer").Nonce;
        _time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(NonceCheck.Expired, store.Consume(late, "signer"));
        Assert.Equal(NonceCheck.Unknown, store.Consume(late, "signer"));
        Assert.Equal(NonceCheck.Unknown, store.Consume(new byte[32], "signer"));
    }

    [Fact]
    public void Outstanding_nonces_are_capped_and_expired_ones_make_room()
    {
        var store = new ChallengeStore(_time, TimeSpan.FromSeconds(60), 3);
        for (var i = 0; i < 3; i++)
        {
            store.Issue("signer");
        }

        Assert.Equal(429, Assert.Throws<KmsException>(() => store.Issue("signer")).StatusCode);
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(429, Assert.Throws<KmsException>(() => store.Issue("signer")).StatusCode);
        _time.Advance(TimeSpan.FromSeconds(31));
        store.Issue("signer");
        Assert.Equal(1, store.Outstanding);
    }
}
