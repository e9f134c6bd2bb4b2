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

    [Fact]
    public void Spent_nonces_free_their_slot_at_once_and_a_replay_is_still_refused()
    {
        // A cap of 3 must not limit logins to 3 a TTL: spending a nonce makes room immediately.
        var store = new ChallengeStore(_time, TimeSpan.FromSeconds(60), 3);
        var spent = new List<byte[]>();
        for (var i = 0; i < 50; i++)
        {
            var nonce = store.Issue("signer").Nonce;
            Assert.Equal(NonceCheck.Valid, store.Consume(nonce, "signer"));
            spent.Add(nonce);
        }

        Assert.Equal(0, store.Outstanding);

        // The last 4 × cap spent nonces are reported as replays; older ones are forgotten, and refused as unknown.
        Assert.Equal(NonceCheck.AlreadyUsed, store.Consume(spent[^1], "signer"));
        Assert.Equal(NonceCheck.AlreadyUsed, store.Consume(spent[^12], "signer"));
        Assert.Equal(NonceCheck.Unknown, store.Consume(spent[0], "signer"));
        Assert.All(spent, n => Assert.NotEqual(NonceCheck.Valid, store.Consume(n, "signer")));

        // Unspent ones still count against the cap.
        for (var i = 0; i < 3; i++)
        {
            store.Issue("signer");
        }

        Assert.Equal(429, Assert.Throws<KmsException>(() => store.Issue("signer")).StatusCode);
        Assert.Equal(3, store.Outstanding);
    }
}
