using System.Buffers.Binary;
using Microsoft.Extensions.Time.Testing;
using Morphisms.Kms.Attest;

namespace Morphisms.Kms.Tests.Attest;

public class ChallengeStoreTests
{
    private static readonly TimeSpan Ttl = TimeSpan.FromSeconds(60);
    private readonly FakeTimeProvider _time = new(SimulatedTees.Epoch);

    [Fact]
    public void A_nonce_is_good_once_for_its_function_until_it_expires()
    {
        var store = new ChallengeStore(_time, Ttl, 10);
        var (nonce, expires) = store.Issue("signer");
        Assert.Equal(56, nonce.Length);
        Assert.Equal(SimulatedTees.Epoch.AddSeconds(60), expires);

        Assert.Equal(NonceCheck.Valid, store.Check(nonce, "signer"));
        Assert.Equal(NonceCheck.Valid, store.Spend(nonce));
        Assert.Equal(NonceCheck.AlreadyUsed, store.Check(nonce, "signer"));
        Assert.Equal(NonceCheck.AlreadyUsed, store.Spend(nonce));

        // Presented for another function it is refused; only an accepted login spends it.
        var other = store.Issue("signer").Nonce;
        Assert.Equal(NonceCheck.OtherFunction, store.Check(other, "verifier"));
        Assert.Equal(NonceCheck.Valid, store.Check(other, "signer"));

        var late = store.Issue("signer").Nonce;
        _time.Advance(Ttl);
        Assert.Equal(NonceCheck.Expired, store.Check(late, "signer"));
        Assert.Equal(NonceCheck.Expired, store.Spend(late));
        Assert.Equal(NonceCheck.Unknown, store.Check(new byte[56], "signer"));
        Assert.Equal(NonceCheck.Unknown, store.Check(new byte[32], "signer"));
        Assert.Equal(NonceCheck.Unknown, store.Spend(new byte[56]));
    }

    [Fact]
    public void Issuing_ten_times_the_old_capacity_of_challenges_does_not_stop_a_real_login()
    {
        // The old store refused challenges once 4096 were outstanding: a loop of unauthenticated requests locked
        // every function out. Issuing now keeps nothing, so a flood leaves room for the real instance.
        var store = new ChallengeStore(_time, Ttl, 4096);
        for (var i = 0; i < 10 * 4096; i++)
        {
            store.Issue("signer");
        }

        var (nonce, _) = store.Issue("signer");
        Assert.Equal(NonceCheck.Valid, store.Check(nonce, "signer"));
        Assert.Equal(NonceCheck.Valid, store.Spend(nonce));
    }

    [Fact]
    public void A_nonce_with_any_one_bit_flipped_is_unknown_and_leaves_the_real_one_usable()
    {
        var store = new ChallengeStore(_time, Ttl, 10);
        var nonce = store.Issue("signer").Nonce;
        for (var bit = 0; bit < nonce.Length * 8; bit++)
        {
            var altered = (byte[])nonce.Clone();
            altered[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Equal(NonceCheck.Unknown, store.Check(altered, "signer"));
            Assert.Equal(NonceCheck.Unknown, store.Spend(altered));
        }

        Assert.Equal(0, store.Spent);
        Assert.Equal(NonceCheck.Valid, store.Spend(nonce));
    }

    [Fact]
    public void A_later_expiry_cannot_be_written_into_a_nonce()
    {
        var store = new ChallengeStore(_time, Ttl, 10);
        var nonce = store.Issue("signer").Nonce;
        var expiry = nonce.AsSpan(16, 8);
        BinaryPrimitives.WriteInt64BigEndian(expiry, BinaryPrimitives.ReadInt64BigEndian(expiry) + TimeSpan.FromHours(1).Ticks);
        _time.Advance(Ttl);

        Assert.Equal(NonceCheck.Unknown, store.Check(nonce, "signer"));
    }

    [Fact]
    public void A_nonce_from_another_kms_instance_is_unknown()
    {
        var issuer = new ChallengeStore(_time, Ttl, 10);
        var other = new ChallengeStore(_time, Ttl, 10);
        var nonce = issuer.Issue("signer").Nonce;

        Assert.Equal(NonceCheck.Unknown, other.Check(nonce, "signer"));
        Assert.Equal(NonceCheck.Unknown, other.Spend(nonce));
        Assert.Equal(NonceCheck.Valid, issuer.Check(nonce, "signer"));
    }

    [Fact]
    public void Spent_nonces_are_remembered_until_they_expire_then_purged()
    {
        var store = new ChallengeStore(_time, Ttl, 10);
        var first = store.Issue("signer").Nonce;
        _time.Advance(TimeSpan.FromSeconds(30));
        var second = store.Issue("signer").Nonce;
        Assert.Equal(NonceCheck.Valid, store.Spend(second));
        Assert.Equal(NonceCheck.Valid, store.Spend(first));
        Assert.Equal(2, store.Spent);

        // Just before the first expires it is still a replay; at its expiry it leaves the set, the second stays.
        _time.Advance(TimeSpan.FromSeconds(30) - TimeSpan.FromTicks(1));
        Assert.Equal(NonceCheck.AlreadyUsed, store.Check(first, "signer"));
        Assert.Equal(2, store.Spent);
        _time.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(1, store.Spent);
        Assert.Equal(NonceCheck.Expired, store.Check(first, "signer"));
        Assert.Equal(NonceCheck.AlreadyUsed, store.Check(second, "signer"));
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(0, store.Spent);
    }

    [Fact]
    public void A_full_spent_set_makes_logins_wait_without_spending_or_forgetting()
    {
        var store = new ChallengeStore(_time, Ttl, 3);
        var spent = new List<byte[]>();
        for (var i = 0; i < 3; i++)
        {
            var nonce = store.Issue("signer").Nonce;
            Assert.Equal(NonceCheck.Valid, store.Spend(nonce));
            spent.Add(nonce);
        }

        // Challenges are still issued; logins wait. No remembered nonce is dropped to make room (it would become
        // replayable), and the waiting nonce stays unspent.
        _time.Advance(TimeSpan.FromSeconds(10));
        var waiting = store.Issue("signer").Nonce;
        Assert.Equal(NonceCheck.Valid, store.Check(waiting, "signer"));
        Assert.Equal(NonceCheck.Busy, store.Spend(waiting));
        Assert.All(spent, n => Assert.Equal(NonceCheck.AlreadyUsed, store.Spend(n)));
        Assert.Equal(3, store.Spent);

        // Forgeries, other functions' and replayed nonces are answered as such, full or not.
        Assert.Equal(NonceCheck.Unknown, store.Check(new byte[56], "signer"));
        Assert.Equal(NonceCheck.OtherFunction, store.Check(waiting, "verifier"));
        Assert.All(spent, n => Assert.Equal(NonceCheck.AlreadyUsed, store.Check(n, "signer")));

        _time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(NonceCheck.Valid, store.Spend(waiting));
        Assert.Equal(1, store.Spent);
    }

    [Fact]
    public void Judging_a_nonce_spends_nothing_so_refused_logins_cannot_fill_the_set()
    {
        // Only an accepted login spends: any number of refused ones (forged evidence, wrong binding, wrong function)
        // with genuine nonces leave the set empty and every nonce usable by the login it was issued for.
        var store = new ChallengeStore(_time, Ttl, 2);
        var nonces = Enumerable.Range(0, 10).Select(_ => store.Issue("signer").Nonce).ToList();
        foreach (var nonce in nonces)
        {
            Assert.Equal(NonceCheck.Valid, store.Check(nonce, "signer"));
            Assert.Equal(NonceCheck.OtherFunction, store.Check(nonce, "verifier"));
        }

        Assert.Equal(0, store.Spent);
        Assert.Equal(NonceCheck.Valid, store.Spend(nonces[^1]));
    }
}
