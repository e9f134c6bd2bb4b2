using Morphisms.Kms.AutoUnseal;

namespace Morphisms.Kms.Tests.AutoUnseal;

public sealed class TeeAutoUnsealTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-tee-seal-").FullName;

    [Fact]
    public async Task The_kms_auto_unseals_from_the_tee_sealing_key_and_another_measurement_cannot()
    {
        var storage = "sqlite:" + Path.Combine(_dir, "kms.db");
        var measurementA = Enumerable.Repeat((byte)0xA1, 48).ToArray();
        var measurementB = Enumerable.Repeat((byte)0xB2, 48).ToArray();
        KmsServerOptions With(byte[] m, KmsServerOptions o) =>
            o with { AutoUnseal = new TeeSealingKeyWrapper(SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, m)) };

        List<string> keys;
        string root;
        await using (var kms = await TestKms.StartAsync(o => With(measurementA, o), storage))
        {
            await kms.InitAsync(3, 2);
            keys = kms.Keys;
            root = kms.RootToken;
            var status = (await kms.Client.GetAsync("sys/seal-status")).Expect(200).Body!;
            Assert.False(status["sealed"]!.GetValue<bool>());
            Assert.Equal("tee-simulated", status["type"]!.GetValue<string>());
            Assert.True(status["recovery_seal"]!.GetValue<bool>());
            (await kms.Client.PutAsync("secret/data/app", new { data = new { v = "1" } })).Expect(200);
        }

        // Restart: unsealed without anyone submitting a share.
        await using (var kms = await TestKms.StartAsync(o => With(measurementA, o), storage))
        {
            Assert.False(kms.Server.Sealed);
            Assert.Equal("1", (await kms.Client.GetAsync("secret/data/app", root)).Expect(200).Data["data"]!["v"]!.GetValue<string>());
        }

        // Another measurement derives another key: sealed, with a warning saying why.
        var warnings = new StringWriter();
        await using (var kms = await TestKms.StartAsync(o => With(measurementB, o) with { WarningWriter = warnings }, storage))
        {
            Assert.True(kms.Server.Sealed);
            Assert.Contains("measurement or platform differs", warnings.ToString(), StringComparison.Ordinal);

            // The shares still work as recovery keys; unsealing with them approves the new measurement.
            kms.Keys.AddRange(keys);
            await kms.UnsealAsync();
        }

        await using (var kms = await TestKms.StartAsync(o => With(measurementB, o), storage))
        {
            Assert.False(kms.Server.Sealed);
        }

        await using (var kms = await TestKms.StartAsync(o => With(measurementA, o), storage))
        {
            Assert.True(kms.Server.Sealed);
        }
    }

    [Fact]
    public void The_simulated_provider_refuses_a_bad_secret_file()
    {
        Assert.Throws<ArgumentException>(() => SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, []));
        File.WriteAllBytes(Path.Combine(_dir, SimulatedTeeSealingKeyProvider.SecretFileName), [1, 2, 3]);
        Assert.Throws<InvalidDataException>(() => SimulatedTeeSealingKeyProvider.LoadOrCreate(_dir, [1]));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
