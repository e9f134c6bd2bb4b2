using System.Security.Cryptography.X509Certificates;
using System.Text;
using Morphisms.Kms.Tests.Pki;

namespace Morphisms.Kms.Tests.Transit;

/// <summary>Transit key and PKI intermediate rotations while encrypt/decrypt and issue requests run: nothing fails.</summary>
public sealed class RotationUnderLoadTests
{
    [Fact]
    public async Task Encrypt_decrypt_and_issue_all_succeed_while_keys_and_intermediates_rotate()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("transit/keys/load")).Expect(204);
        (await c.PostAsync("pki/roles/svc", new { allowed_domains = "svc.local", allow_subdomains = true })).Expect(204);
        (await c.PostAsync("pki/issue/svc", new { common_name = "warm.svc.local" })).Expect(200);

        using var stop = new CancellationTokenSource();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var leaves = new System.Collections.Concurrent.ConcurrentBag<string>();
        var ciphertexts = new System.Collections.Concurrent.ConcurrentBag<(string Ciphertext, string Plaintext)>();
        var operations = 0;

        async Task Crypto(int worker)
        {
            for (var i = 0; !stop.IsCancellationRequested || i < 5; i++)
            {
                var plain = Convert.ToBase64String(Encoding.UTF8.GetBytes($"w{worker}-{i}"));
                var enc = await c.PostAsync("transit/encrypt/load", new { plaintext = plain });
                if (enc.Status != 200)
                {
                    failures.Enqueue("encrypt " + enc.Raw);
                    continue;
                }

                var ct = enc.Data["ciphertext"]!.GetValue<string>();
                ciphertexts.Add((ct, plain));
                var dec = await c.PostAsync("transit/decrypt/load", new { ciphertext = ct });
                if (dec.Status != 200 || dec.Data["plaintext"]!.GetValue<string>() != plain)
                {
                    failures.Enqueue("decrypt " + dec.Raw);
                }

                Interlocked.Increment(ref operations);
            }
        }

        async Task Issue(int worker)
        {
            for (var i = 0; !stop.IsCancellationRequested || i < 3; i++)
            {
                var issued = await c.PostAsync("pki/issue/svc", new { common_name = $"w{worker}-{i}.svc.local", ttl = "2h" });
                if (issued.Status != 200)
                {
                    failures.Enqueue("issue " + issued.Raw);
                    continue;
                }

                leaves.Add(issued.Data["certificate"]!.GetValue<string>());
                Interlocked.Increment(ref operations);
            }
        }

        async Task Rotate()
        {
            for (var i = 0; i < 4; i++)
            {
                var t = await c.PostAsync("transit/keys/load/rotate");
                var p = await c.PostAsync("pki/intermediate/rotate");
                if (t.Status != 200 || p.Status != 200)
                {
                    failures.Enqueue("rotate " + t.Raw + p.Raw);
                }

                await Task.Delay(20);
            }

            await stop.CancelAsync();
        }

        await Task.WhenAll([.. Enumerable.Range(0, 3).Select(Crypto), .. Enumerable.Range(0, 2).Select(Issue), Rotate()]);
        Assert.Empty(failures);
        Assert.True(operations > 20, $"only {operations} operations ran");
        Assert.Equal(5, (await c.GetAsync("transit/keys/load")).Expect(200).Data["latest_version"]!.GetValue<int>());

        // Every ciphertext from every version still decrypts, and every leaf validates against the served chain.
        foreach (var (ct, plain) in ciphertexts)
        {
            Assert.Equal(plain, (await c.PostAsync("transit/decrypt/load", new { ciphertext = ct })).Expect(200).Data["plaintext"]!.GetValue<string>());
        }

        var served = PkiAssert.Certificates([(await c.GetAsync("pki/ca_chain")).Expect(200).Raw]);
        var root = served.Single(s => s.SubjectName.RawData.AsSpan().SequenceEqual(s.IssuerName.RawData));
        var at = kms.Time.GetUtcNow().AddMinutes(1);
        foreach (var pem in leaves)
        {
            using var leaf = X509Certificate2.CreateFromPem(pem);
            PkiAssert.Chains(leaf, root, served, at);
        }
    }
}
