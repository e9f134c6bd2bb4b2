namespace Morphisms.Kms.Tests.Kv;

/// <summary>Long-poll reads (<c>wait_version_gt</c>): running instances learn of a new secret version at once.</summary>
public sealed class KvLongPollTests
{
    [Fact]
    public async Task A_parked_read_returns_as_soon_as_a_newer_version_is_written()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);

        // Already newer than asked: no wait at all.
        var now = (await c.GetAsync("secret/data/app?wait_version_gt=0")).Expect(200).Data;
        Assert.Equal(1, now["metadata"]!["version"]!.GetValue<long>());

        var parked = c.GetAsync("secret/data/app?wait_version_gt=1&wait=60s");
        await kms.WaitForKvWaitersAsync(1);
        Assert.False(parked.IsCompleted);
        (await c.PostAsync("secret/data/other", new { data = new { v = "x" } })).Expect(200);
        await Task.Delay(100);
        Assert.False(parked.IsCompleted);

        (await c.PostAsync("secret/data/app", new { data = new { v = "2" } })).Expect(200);
        var woken = (await parked.WaitAsync(TimeSpan.FromSeconds(10))).Expect(200);
        Assert.Equal("2", woken.Data["data"]!["v"]!.GetValue<string>());
        Assert.Equal(2, woken.Data["metadata"]!["version"]!.GetValue<long>());
        Assert.Equal("kv", woken.Body!["mount_type"]?.GetValue<string>() ?? "kv");
    }

    [Fact]
    public async Task At_the_timeout_the_current_data_comes_back_and_a_missing_key_can_be_waited_for()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);
        var parked = c.GetAsync("secret/data/app?wait_version_gt=1&wait=30s");
        await kms.WaitForKvWaitersAsync(1);
        var timedOut = (await AdvancePastAsync(kms, parked, TimeSpan.FromSeconds(31))).Expect(200);
        Assert.Equal(1, timedOut.Data["metadata"]!["version"]!.GetValue<long>());

        var missing = c.GetAsync("secret/data/later?wait_version_gt=0");
        await kms.WaitForKvWaitersAsync(1);
        (await c.PostAsync("secret/data/later", new { data = new { v = "now" } })).Expect(200);
        Assert.Equal("now", (await missing.WaitAsync(TimeSpan.FromSeconds(10))).Expect(200).Data["data"]!["v"]!.GetValue<string>());

        var never = c.GetAsync("secret/data/never?wait_version_gt=0&wait=5s");
        await kms.WaitForKvWaitersAsync(1);
        (await AdvancePastAsync(kms, never, TimeSpan.FromSeconds(6))).Expect(404);
    }

    [Fact]
    public async Task Deleting_the_keys_metadata_answers_a_parked_read_with_a_404_at_once()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);
        var parked = c.GetAsync("secret/data/app?wait_version_gt=1&wait=300s");
        await kms.WaitForKvWaitersAsync(1);

        // Its versions are gone and a key written there again numbers from 1: waiting for more than 1 would wait out
        // the whole 5 minutes. The clock does not move here, so only the delete can answer it.
        (await c.DeleteAsync("secret/metadata/app")).Expect(204);
        (await parked.WaitAsync(TimeSpan.FromSeconds(10))).Expect(404);
        Assert.Equal(0, kms.Server.KvWaiters);
    }

    [Fact]
    public async Task The_number_of_waiters_is_bounded_and_sealing_wakes_them()
    {
        await using var kms = await TestKms.StartUnsealedAsync(o => o with { MaxKvWaiters = 1 });
        var c = kms.Client;
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);
        var parked = c.GetAsync("secret/data/app?wait_version_gt=1&wait=300s");
        await kms.WaitForKvWaitersAsync(1);
        Assert.Contains("too many long-poll", (await c.GetAsync("secret/data/app?wait_version_gt=1")).Expect(429).Errors[0], StringComparison.Ordinal);

        // Sealing does not wait for the parked read: it answers with the current data and the seal completes.
        (await c.PutAsync("sys/seal")).Expect(204);
        Assert.Equal(1, (await parked.WaitAsync(TimeSpan.FromSeconds(5))).Expect(200).Data["metadata"]!["version"]!.GetValue<long>());
        Assert.True(kms.Server.Sealed);
    }

    [Fact]
    public async Task A_parked_read_is_authorised_again_before_it_answers_with_what_was_written_while_it_waited()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/app", new { policy = """path "secret/data/app" { capabilities = ["read"] }""" })).Expect(204);
        (await c.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);

        // Still allowed: the new version comes back, and the re-check spends none of a limited token's uses.
        var twoUses = await TokenAsync(c, new { policies = new[] { "app" }, num_uses = 2 });
        var parked = c.GetAsync("secret/data/app?wait_version_gt=1&wait=60s", twoUses);
        await kms.WaitForKvWaitersAsync(1);
        (await c.PostAsync("secret/data/app", new { data = new { v = "2" } })).Expect(200);
        Assert.Equal("2", (await parked.WaitAsync(TimeSpan.FromSeconds(10))).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        (await c.GetAsync("secret/data/app", twoUses)).Expect(200);

        // Revoked while parked (a retired revision's instance): the rotated secret is not handed over.
        var revoked = await TokenAsync(c, new { policies = new[] { "app" } });
        parked = c.GetAsync("secret/data/app?wait_version_gt=2&wait=60s", revoked);
        await kms.WaitForKvWaitersAsync(1);
        (await c.PostAsync("auth/token/revoke", new { token = revoked })).Expect(204);
        (await c.PostAsync("secret/data/app", new { data = new { v = "3" } })).Expect(200);
        Assert.Equal(["permission denied"], (await parked.WaitAsync(TimeSpan.FromSeconds(10))).Expect(403).Errors);

        // The policy no longer grants the path: the same.
        var narrowed = await TokenAsync(c, new { policies = new[] { "app" } });
        parked = c.GetAsync("secret/data/app?wait_version_gt=3&wait=60s", narrowed);
        await kms.WaitForKvWaitersAsync(1);
        (await c.PutAsync("sys/policies/acl/app", new { policy = """path "secret/data/other" { capabilities = ["read"] }""" })).Expect(204);
        (await c.PostAsync("secret/data/app", new { data = new { v = "4" } })).Expect(200);
        Assert.Equal(["permission denied"], (await parked.WaitAsync(TimeSpan.FromSeconds(10))).Expect(403).Errors);
    }

    [Theory]
    [InlineData("wait=10s", "wait")]
    [InlineData("wait_version_gt=1&wait=10m", "wait")]
    [InlineData("wait_version_gt=1&wait=0s", "wait")]
    [InlineData("wait_version_gt=-1", "wait_version_gt")]
    [InlineData("wait_version_gt=x", "wait_version_gt")]
    [InlineData("wait_version_gt=1&version=1", "wait_version_gt")]
    [InlineData("wait_version_gt=1&wait=soon", "wait")]
    public async Task Bad_wait_parameters_are_400s_naming_the_field(string query, string field)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        (await kms.Client.PostAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);
        var error = (await kms.Client.GetAsync("secret/data/app?" + query)).Expect(400).Errors[0];
        Assert.Contains($"'{field}'", error, StringComparison.Ordinal);
    }

    /// <summary>
    /// Advances the clock by <paramref name="step"/> until <paramref name="request"/> answers: a reader counts as waiting
    /// from the moment it is admitted, a little before it reads the clock for its deadline, so one step taken just
    /// then would land before its deadline was set and leave it parked.
    /// </summary>
    private static async Task<VaultResult> AdvancePastAsync(TestKms kms, Task<VaultResult> request, TimeSpan step)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!request.IsCompleted)
        {
            Assert.True(DateTime.UtcNow < deadline, "the parked read did not answer after its wait");
            kms.Time.Advance(step);
            await Task.WhenAny(request, Task.Delay(50));
        }

        return await request;
    }

    private static async Task<string> TokenAsync(VaultHttp c, object request) =>
        (await c.PostAsync("auth/token/create", request)).Expect(200).Auth["client_token"]!.GetValue<string>();
}
