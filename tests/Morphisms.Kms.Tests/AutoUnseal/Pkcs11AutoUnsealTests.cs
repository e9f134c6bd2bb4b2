using Morphisms.Kms.AutoUnseal;
using Net.Pkcs11Interop.Common;

namespace Morphisms.Kms.Tests.AutoUnseal;

[Collection(SoftHsmCollection.Name)]
public sealed class Pkcs11AutoUnsealTests : IDisposable
{
    private readonly SoftHsmToken _hsm = SoftHsmToken.Create();
    private readonly string _storage;

    public Pkcs11AutoUnsealTests() => _storage = "sqlite:" + Path.Combine(_hsm.Directory, "kms.db");

    [Fact]
    public async Task Init_wraps_the_root_key_in_the_hsm_and_a_restart_unseals_from_it()
    {
        string root;
        await using (var kms = await StartAsync(_hsm.Options()))
        {
            await kms.InitAsync(3, 2);
            root = kms.RootToken;
            var status = (await kms.Client.GetAsync("sys/seal-status")).Expect(200).Body!;
            Assert.False(status["sealed"]!.GetValue<bool>());
            Assert.Equal("pkcs11", status["type"]!.GetValue<string>());
            Assert.True(status["recovery_seal"]!.GetValue<bool>());
            (await kms.Client.PutAsync("secret/data/app", new { data = new { v = "hsm" } })).Expect(200);
        }

        // The key was made in the token as sensitive and not extractable: the host never sees it.
        SoftHsmToken.WithSession((factories, session) =>
        {
            var a = factories.ObjectAttributeFactory;
            var key = Assert.Single(session.FindAllObjects([a.Create(CKA.CKA_LABEL, "kms-root-wrap")]));
            var attributes = session.GetAttributeValue(key, [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE, CKA.CKA_VALUE_LEN]);
            Assert.True(attributes[0].GetValueAsBool());
            Assert.False(attributes[1].GetValueAsBool());
            Assert.Equal(32UL, attributes[2].GetValueAsUlong());
        });

        await using (var kms = await StartAsync(_hsm.Options()))
        {
            Assert.False(kms.Server.Sealed);
            Assert.Equal("hsm", (await kms.Client.GetAsync("secret/data/app", root)).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task Vault_style_init_takes_recovery_shares_and_answers_recovery_keys_that_also_unseal()
    {
        await using var kms = await StartAsync(_hsm.Options());

        // As `vault operator init -recovery-shares=3 -recovery-threshold=2` sends it: the unused Shamir pair as zeros.
        var init = (await kms.Client.PutAsync("sys/init", new { secret_shares = 0, secret_threshold = 0, recovery_shares = 3, recovery_threshold = 2 })).Expect(200).Body!;
        var recovery = init["recovery_keys"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();
        Assert.Equal(3, recovery.Count);
        Assert.Equal(recovery.Select(k => Convert.ToBase64String(Convert.FromHexString(k))), init["recovery_keys_base64"]!.AsArray().Select(k => k!.GetValue<string>()));
        var root = init["root_token"]!.GetValue<string>();
        Assert.StartsWith("hvs.", root, StringComparison.Ordinal);

        // The same shares are unseal keys too (they decrypt the root key without the HSM), so `keys` says so.
        Assert.Equal(recovery, init["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
        Assert.Equal(3, init["keys_base64"]!.AsArray().Count);
        Assert.False(kms.Server.Sealed);
        var status = (await kms.Client.GetAsync("sys/seal-status")).Expect(200).Body!;
        Assert.True(status["recovery_seal"]!.GetValue<bool>());
        Assert.Equal(2, status["t"]!.GetValue<int>());
        Assert.Equal(3, status["n"]!.GetValue<int>());

        (await kms.Client.PutAsync("sys/seal", new { }, root)).Expect(204);
        Assert.True(kms.Server.Sealed);
        kms.Keys.AddRange(recovery.Skip(1));
        await kms.UnsealAsync();
        (await kms.Client.PutAsync("secret/data/app", new { data = new { v = "1" } }, root)).Expect(200);
    }

    [Fact]
    public async Task Init_with_auto_unseal_refuses_the_shamir_parameters_as_vault_does_and_writes_nothing()
    {
        await using var kms = await StartAsync(_hsm.Options());
        var c = kms.Client;
        Assert.Equal(
            ["parameters secret_shares,secret_threshold not applicable to seal type pkcs11: with auto-unseal, init takes recovery_shares and recovery_threshold"],
            (await c.PutAsync("sys/init", new { secret_shares = 3, secret_threshold = 2 })).Expect(400).Errors);

        // hvac's initialize() sends its default secret_shares=5, secret_threshold=3 beside the recovery pair.
        Assert.StartsWith(
            "parameters secret_shares,secret_threshold not applicable to seal type pkcs11",
            (await c.PutAsync("sys/init", new { secret_shares = 5, secret_threshold = 3, recovery_shares = 5, recovery_threshold = 3 })).Expect(400).Errors[0],
            StringComparison.Ordinal);
        Assert.StartsWith("parameters secret_threshold not applicable", (await c.PutAsync("sys/init", new { secret_threshold = 2, recovery_shares = 3, recovery_threshold = 2 })).Expect(400).Errors[0], StringComparison.Ordinal);
        Assert.Equal(["missing required parameter 'recovery_shares'"], (await c.PutAsync("sys/init", new { })).Expect(400).Errors);
        Assert.Equal(["missing required parameter 'recovery_threshold'"], (await c.PutAsync("sys/init", new { recovery_shares = 3 })).Expect(400).Errors);
        Assert.Equal(["invalid seal configuration: recovery_threshold cannot be larger than recovery_shares"], (await c.PutAsync("sys/init", new { recovery_shares = 2, recovery_threshold = 3 })).Expect(400).Errors);
        Assert.Equal(["invalid seal configuration: recovery_shares must be at least one"], (await c.PutAsync("sys/init", new { recovery_shares = 0, recovery_threshold = 0 })).Expect(400).Errors);
        Assert.Contains("PGP", (await c.PutAsync("sys/init", new { recovery_shares = 1, recovery_threshold = 1, recovery_pgp_keys = new[] { "a" } })).Expect(400).Errors[0], StringComparison.Ordinal);

        Assert.False((await c.GetAsync("sys/init")).Expect(200).Body!["initialized"]!.GetValue<bool>());
        (await c.PutAsync("sys/init", new { recovery_shares = 1, recovery_threshold = 1 })).Expect(200);
    }

    [Fact]
    public async Task A_wrong_pin_leaves_the_kms_sealed_with_a_clear_reason_and_the_shares_still_unseal()
    {
        List<string> keys;
        await using (var kms = await StartAsync(_hsm.Options()))
        {
            await kms.InitAsync(1, 1);
            keys = kms.Keys;
        }

        var wrongPin = Path.Combine(_hsm.Directory, "wrong-pin");
        File.WriteAllText(wrongPin, "0000");
        var warnings = new StringWriter();
        await using (var kms = await StartAsync(_hsm.Options() with { PinFile = wrongPin }, warnings))
        {
            Assert.True(kms.Server.Sealed);
            Assert.Contains("refused the PIN", warnings.ToString(), StringComparison.Ordinal);
            Assert.Contains("CKR_PIN_INCORRECT", warnings.ToString(), StringComparison.Ordinal);

            // Recovery: the shares unseal by hand even though the HSM is unusable, and say auto-unseal is off.
            kms.Keys.AddRange(keys);
            await kms.UnsealAsync();
            Assert.False(kms.Server.Sealed);
            Assert.Contains("could not wrap the root key", warnings.ToString(), StringComparison.Ordinal);
        }

        // The old wrapping survived the failed attempt: the right PIN auto-unseals again.
        await using (var kms = await StartAsync(_hsm.Options()))
        {
            Assert.False(kms.Server.Sealed);
        }
    }

    [Fact]
    public async Task A_key_deleted_from_the_hsm_leaves_the_kms_sealed_until_the_shares_rewrap_under_a_new_key()
    {
        List<string> keys;
        await using (var kms = await StartAsync(_hsm.Options()))
        {
            await kms.InitAsync(1, 1);
            keys = kms.Keys;
        }

        SoftHsmToken.WithSession((factories, session) =>
            session.DestroyObject(Assert.Single(session.FindAllObjects([factories.ObjectAttributeFactory.Create(CKA.CKA_LABEL, "kms-root-wrap")]))));

        var warnings = new StringWriter();
        await using (var kms = await StartAsync(_hsm.Options(), warnings))
        {
            Assert.True(kms.Server.Sealed);
            Assert.Contains("no AES key labelled 'kms-root-wrap'", warnings.ToString(), StringComparison.Ordinal);
            kms.Keys.AddRange(keys);
            await kms.UnsealAsync();
        }

        await using (var kms = await StartAsync(_hsm.Options()))
        {
            Assert.False(kms.Server.Sealed);
        }
    }

    [Fact]
    public async Task Another_key_under_another_label_cannot_unwrap()
    {
        await using (var kms = await StartAsync(_hsm.Options()))
        {
            await kms.InitAsync(1, 1);
        }

        // Wrapping with a second label creates a second key; it must not open what the first one wrapped.
        var other = new Pkcs11RootKeyWrapper(_hsm.Options("other-key"));
        var wrapped = await other.WrapAsync(new byte[32], CancellationToken.None);
        Assert.Equal(new byte[32], await other.UnwrapAsync(wrapped, CancellationToken.None));
        var e = await Assert.ThrowsAsync<AutoUnsealException>(() => new Pkcs11RootKeyWrapper(_hsm.Options()).UnwrapAsync(wrapped, CancellationToken.None));
        Assert.Contains("does not unwrap", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_pin_comes_from_an_environment_variable_or_a_file_and_bad_options_are_refused()
    {
        var variable = "MORPH_TEST_PKCS11_PIN_" + Guid.NewGuid().ToString("N");
        Environment.SetEnvironmentVariable(variable, SoftHsmToken.Pin);
        try
        {
            var wrapper = new Pkcs11RootKeyWrapper(_hsm.Options() with { PinFile = null, PinEnvironmentVariable = variable });
            var wrapped = await wrapper.WrapAsync(new byte[32], CancellationToken.None);
            Assert.Equal(new byte[32], await wrapper.UnwrapAsync(wrapped, CancellationToken.None));
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        var unset = new Pkcs11RootKeyWrapper(_hsm.Options() with { PinFile = null, PinEnvironmentVariable = variable });
        Assert.Contains("is not set", (await Assert.ThrowsAsync<AutoUnsealException>(() => unset.WrapAsync(new byte[32], CancellationToken.None))).Message, StringComparison.Ordinal);
        var noToken = new Pkcs11RootKeyWrapper(_hsm.Options() with { TokenLabel = "absent" });
        Assert.Contains("no PKCS#11 token 'absent'", (await Assert.ThrowsAsync<AutoUnsealException>(() => noToken.WrapAsync(new byte[32], CancellationToken.None))).Message, StringComparison.Ordinal);
        var noLibrary = new Pkcs11RootKeyWrapper(_hsm.Options() with { LibraryPath = "/nonexistent/libpkcs11.so" });
        Assert.Contains("loading the PKCS#11 library", (await Assert.ThrowsAsync<AutoUnsealException>(() => noLibrary.WrapAsync(new byte[32], CancellationToken.None))).Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentException>(() => new Pkcs11RootKeyWrapper(_hsm.Options() with { PinEnvironmentVariable = variable }));
        Assert.Throws<ArgumentException>(() => new Pkcs11RootKeyWrapper(_hsm.Options() with { SlotId = 0 }));
        Assert.Throws<ArgumentException>(() => new Pkcs11RootKeyWrapper(_hsm.Options() with { KeyLabel = "" }));
    }

    public void Dispose() => _hsm.Dispose();

    private Task<TestKms> StartAsync(Pkcs11SealOptions seal, TextWriter? warnings = null) =>
        TestKms.StartAsync(o => o with { AutoUnseal = new Pkcs11RootKeyWrapper(seal), WarningWriter = warnings ?? TextWriter.Null }, _storage);
}
