using System.Text;

namespace Morphisms.Kms.Tests.Transit;

/// <summary>The transit engine over HTTP: versions, min_decryption_version, rewrap, sign/verify, bad input.</summary>
public sealed class TransitApiTests
{
    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

    [Fact]
    public async Task Old_versions_decrypt_until_min_decryption_version_passes_them_and_rewrap_moves_to_the_latest()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("transit/keys/orders")).Expect(204);
        var v1 = (await c.PostAsync("transit/encrypt/orders", new { plaintext = B64("one") })).Expect(200).Data["ciphertext"]!.GetValue<string>();
        Assert.StartsWith("vault:v1:", v1, StringComparison.Ordinal);
        Assert.Equal(12 + 3 + 16, Convert.FromBase64String(v1["vault:v1:".Length..]).Length);

        (await c.PostAsync("transit/keys/orders/rotate")).Expect(200);
        (await c.PostAsync("transit/keys/orders/rotate")).Expect(200);
        var v3 = (await c.PostAsync("transit/encrypt/orders", new { plaintext = B64("three") })).Expect(200).Data["ciphertext"]!.GetValue<string>();
        Assert.StartsWith("vault:v3:", v3, StringComparison.Ordinal);
        var v2 = (await c.PostAsync("transit/encrypt/orders", new { plaintext = B64("two"), key_version = 2 })).Expect(200).Data["ciphertext"]!.GetValue<string>();
        Assert.StartsWith("vault:v2:", v2, StringComparison.Ordinal);

        foreach (var (ct, plain) in new[] { (v1, "one"), (v2, "two"), (v3, "three") })
        {
            Assert.Equal(B64(plain), (await c.PostAsync("transit/decrypt/orders", new { ciphertext = ct })).Expect(200).Data["plaintext"]!.GetValue<string>());
        }

        var rewrapped = (await c.PostAsync("transit/rewrap/orders", new { ciphertext = v1 })).Expect(200).Data;
        Assert.Equal(3, rewrapped["key_version"]!.GetValue<int>());
        var v1Now3 = rewrapped["ciphertext"]!.GetValue<string>();
        Assert.StartsWith("vault:v3:", v1Now3, StringComparison.Ordinal);

        var key = (await c.PostAsync("transit/keys/orders/config", new { min_decryption_version = 2 })).Expect(200).Data;
        Assert.Equal(2, key["min_decryption_version"]!.GetValue<int>());
        Assert.Contains("min_decryption_version", (await c.PostAsync("transit/decrypt/orders", new { ciphertext = v1 })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Equal(B64("two"), (await c.PostAsync("transit/decrypt/orders", new { ciphertext = v2 })).Expect(200).Data["plaintext"]!.GetValue<string>());
        Assert.Equal(B64("one"), (await c.PostAsync("transit/decrypt/orders", new { ciphertext = v1Now3 })).Expect(200).Data["plaintext"]!.GetValue<string>());
        Assert.Contains("'key_version'", (await c.PostAsync("transit/encrypt/orders", new { plaintext = B64("x"), key_version = 1 })).Expect(400).Errors.Single(), StringComparison.Ordinal);

        var read = (await c.GetAsync("transit/keys/orders")).Expect(200).Data;
        Assert.Equal(3, read["latest_version"]!.GetValue<int>());
        Assert.Equal(3, read["keys"]!.AsObject().Count);
        Assert.DoesNotContain("\"key\"", read.ToJsonString(), StringComparison.Ordinal);

        // Batch: every item answers; one bad item makes the response a 400 with the others' results intact.
        var batch = (await c.PostAsync("transit/decrypt/orders", new { batch_input = new object[] { new { ciphertext = v2 }, new { ciphertext = v3 } } })).Expect(200).Data["batch_results"]!.AsArray();
        Assert.Equal([B64("two"), B64("three")], batch.Select(r => r!["plaintext"]!.GetValue<string>()));
        var partial = (await c.PostAsync("transit/decrypt/orders", new { batch_input = new object[] { new { ciphertext = v2 }, new { ciphertext = v1 } } })).Expect(400);
        Assert.Equal(B64("two"), partial.Data["batch_results"]![0]!["plaintext"]!.GetValue<string>());
        Assert.Contains("batch_input[1]", partial.Data["batch_results"]![1]!["error"]!.GetValue<string>(), StringComparison.Ordinal);

        // Datakeys: the wrapped form decrypts to the plaintext form's key.
        var dk = (await c.PostAsync("transit/datakey/plaintext/orders", new { bits = 128 })).Expect(200).Data;
        Assert.Equal(16, Convert.FromBase64String(dk["plaintext"]!.GetValue<string>()).Length);
        Assert.Equal(dk["plaintext"]!.GetValue<string>(), (await c.PostAsync("transit/decrypt/orders", new { ciphertext = dk["ciphertext"]!.GetValue<string>() })).Expect(200).Data["plaintext"]!.GetValue<string>());
        Assert.Null((await c.PostAsync("transit/datakey/wrapped/orders")).Expect(200).Data["plaintext"]);

        // Deletion only once allowed.
        Assert.Contains("deletion_allowed", (await c.DeleteAsync("transit/keys/orders")).Expect(400).Errors.Single(), StringComparison.Ordinal);
        (await c.PostAsync("transit/keys/orders/config", new { deletion_allowed = true })).Expect(200);
        (await c.DeleteAsync("transit/keys/orders")).Expect(204);
        (await c.GetAsync("transit/keys/orders")).Expect(404);
    }

    [Theory]
    [InlineData("ecdsa-p256")]
    [InlineData("ed25519")]
    public async Task Signatures_verify_across_rotations_and_tampering_fails(string type)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("transit/keys/signer", new { type })).Expect(204);
        var input = B64("attested payload");
        var sig1 = (await c.PostAsync("transit/sign/signer", new { input })).Expect(200).Data["signature"]!.GetValue<string>();
        Assert.StartsWith("vault:v1:", sig1, StringComparison.Ordinal);
        (await c.PostAsync("transit/keys/signer/rotate")).Expect(200);
        var sig2 = (await c.PostAsync("transit/sign/signer", new { input })).Expect(200).Data["signature"]!.GetValue<string>();
        Assert.StartsWith("vault:v2:", sig2, StringComparison.Ordinal);

        foreach (var sig in new[] { sig1, sig2 })
        {
            Assert.True((await c.PostAsync("transit/verify/signer", new { input, signature = sig })).Expect(200).Data["valid"]!.GetValue<bool>());
            Assert.False((await c.PostAsync("transit/verify/signer", new { input = B64("other payload"), signature = sig })).Expect(200).Data["valid"]!.GetValue<bool>());
        }

        Assert.False((await c.PostAsync("transit/verify/signer", new { input, signature = "vault:v2:AAAA" })).Expect(200).Data["valid"]!.GetValue<bool>());
        var swapped = "vault:v2:" + sig1["vault:v1:".Length..];
        Assert.False((await c.PostAsync("transit/verify/signer", new { input, signature = swapped })).Expect(200).Data["valid"]!.GetValue<bool>());
        if (type == "ecdsa-p256")
        {
            var jws = (await c.PostAsync("transit/sign/signer/sha2-384", new { input, marshaling_algorithm = "jws" })).Expect(200).Data["signature"]!.GetValue<string>();
            Assert.DoesNotContain('=', jws);
            Assert.True((await c.PostAsync("transit/verify/signer/sha2-384", new { input, signature = jws, marshaling_algorithm = "jws" })).Expect(200).Data["valid"]!.GetValue<bool>());
        }

        var keys = (await c.GetAsync("transit/keys/signer")).Expect(200).Data["keys"]!.AsObject();
        Assert.False(string.IsNullOrEmpty(keys["2"]!["public_key"]!.GetValue<string>()));

        (await c.PostAsync("transit/keys/signer/config", new { min_decryption_version = 2 })).Expect(200);
        Assert.Contains("'signature'", (await c.PostAsync("transit/verify/signer", new { input, signature = sig1 })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("does not support encryption", (await c.PostAsync("transit/encrypt/signer", new { plaintext = input })).Expect(400).Errors.Single(), StringComparison.Ordinal);
    }

    /// <summary>
    /// As in Vault: each batch item's <c>reference</c> comes back in its result (failed ones too, "" when none was
    /// given), and <c>partial_failure_response_code</c> is the status when some items fail and some succeed; when all
    /// fail it is still a 400.
    /// </summary>
    [Fact]
    public async Task Batches_echo_each_items_reference_and_honour_partial_failure_response_code()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("transit/keys/k")).Expect(204);
        var encrypted = (await c.PostAsync("transit/encrypt/k", new { batch_input = new object[] { new { plaintext = B64("a"), reference = "first" }, new { plaintext = B64("b") } } }))
            .Expect(200).Data["batch_results"]!.AsArray();
        Assert.Equal(["first", ""], encrypted.Select(r => r!["reference"]!.GetValue<string>()));
        var good = encrypted[0]!["ciphertext"]!.GetValue<string>();
        const string Bad = "vault:v1:AAAA";

        object Items(params string[] ciphertexts) => ciphertexts.Select((ct, i) => new { ciphertext = ct, reference = "r" + i }).ToArray();
        var partial = (await c.PostAsync("transit/decrypt/k", new { batch_input = Items(good, Bad) })).Expect(400).Data["batch_results"]!.AsArray();
        Assert.Equal(["r0", "r1"], partial.Select(r => r!["reference"]!.GetValue<string>()));
        Assert.Equal(B64("a"), partial[0]!["plaintext"]!.GetValue<string>());
        Assert.NotNull(partial[1]!["error"]);

        var overridden = (await c.PostAsync("transit/decrypt/k", new { batch_input = Items(good, Bad), partial_failure_response_code = 207 })).Expect(207).Data["batch_results"]!.AsArray();
        Assert.Equal(["r0", "r1"], overridden.Select(r => r!["reference"]!.GetValue<string>()));
        (await c.PostAsync("transit/decrypt/k", new { batch_input = Items(Bad, Bad), partial_failure_response_code = 207 })).Expect(400);
        (await c.PostAsync("transit/decrypt/k", new { batch_input = Items(good, good), partial_failure_response_code = "207" })).Expect(200);
        var rewrapped = (await c.PostAsync("transit/rewrap/k", new { batch_input = Items(good, Bad), partial_failure_response_code = 200 })).Expect(200).Data["batch_results"]!.AsArray();
        Assert.Equal(["r0", "r1"], rewrapped.Select(r => r!["reference"]!.GetValue<string>()));

        // Outside a batch both are accepted and change nothing.
        var single = (await c.PostAsync("transit/decrypt/k", new { ciphertext = good, reference = "x", partial_failure_response_code = 207 })).Expect(200).Data;
        Assert.Equal(B64("a"), single["plaintext"]!.GetValue<string>());

        foreach (var code in new object[] { 99, 600, "soon" })
        {
            Assert.Contains("'partial_failure_response_code'", (await c.PostAsync("transit/decrypt/k", new { batch_input = Items(good), partial_failure_response_code = code })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// Sign and verify take <c>batch_input</c> as Vault does: sign's items carry <c>input</c>, verify's <c>input</c> and
    /// <c>signature</c>; hash, marshaling and key version are the request's. Results come back in order with each
    /// item's <c>reference</c> (sign's with <c>signature</c> and <c>key_version</c>, verify's with <c>valid</c>), and a
    /// failing item reports its error in its result of a 200, as Vault answers these batches.
    /// </summary>
    [Theory]
    [InlineData("ecdsa-p256")]
    [InlineData("ed25519")]
    public async Task Sign_and_verify_take_batch_input_with_references_and_partial_failure(string type)
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PostAsync("transit/keys/signer", new { type })).Expect(204);
        (await c.PostAsync("transit/keys/signer/rotate")).Expect(200);
        string[] inputs = [B64("first"), B64("second"), B64("third")];

        var signed = (await c.PostAsync("transit/sign/signer", new
        {
            key_version = 1,
            batch_input = new object[] { new { input = inputs[0], reference = "a" }, new { input = inputs[1] }, new { input = inputs[2], context = "", reference = "c" } },
        })).Expect(200).Data["batch_results"]!.AsArray();
        Assert.Equal(["a", "", "c"], signed.Select(r => r!["reference"]!.GetValue<string>()));
        Assert.All(signed, r => Assert.Equal(1, r!["key_version"]!.GetValue<int>()));
        Assert.All(signed, r => Assert.Null(r!["error"]));
        var signatures = signed.Select(r => r!["signature"]!.GetValue<string>()).ToArray();
        Assert.All(signatures, s => Assert.StartsWith("vault:v1:", s, StringComparison.Ordinal));

        // Each signature is over its own item: it verifies alone, and the batch checks each against its input.
        for (var i = 0; i < inputs.Length; i++)
        {
            Assert.True((await c.PostAsync("transit/verify/signer", new { input = inputs[i], signature = signatures[i] })).Expect(200).Data["valid"]!.GetValue<bool>());
        }

        var verified = (await c.PostAsync("transit/verify/signer", new
        {
            batch_input = new object[]
            {
                new { input = inputs[0], signature = signatures[0], reference = "ok" },
                new { input = inputs[0], signature = signatures[1], reference = "swapped" },
                new { input = inputs[2], signature = signatures[2] },
            },
        })).Expect(200).Data["batch_results"]!.AsArray();
        Assert.Equal([true, false, true], verified.Select(r => r!["valid"]!.GetValue<bool>()));
        Assert.Equal(["ok", "swapped", ""], verified.Select(r => r!["reference"]!.GetValue<string>()));

        // Request-level options apply to every item (a JWS signature verifies only as JWS).
        if (type == "ecdsa-p256")
        {
            var jws = (await c.PostAsync("transit/sign/signer/sha2-384", new { marshaling_algorithm = "jws", batch_input = new object[] { new { input = inputs[0] } } }))
                .Expect(200).Data["batch_results"]![0]!;
            Assert.Equal(2, jws["key_version"]!.GetValue<int>());
            var jwsSignature = jws["signature"]!.GetValue<string>();
            Assert.DoesNotContain('=', jwsSignature);
            Assert.True((await c.PostAsync("transit/verify/signer/sha2-384", new { marshaling_algorithm = "jws", batch_input = new object[] { new { input = inputs[0], signature = jwsSignature } } }))
                .Expect(200).Data["batch_results"]![0]!["valid"]!.GetValue<bool>());
        }

        // A bad item fails alone, with its reference, and the batch is still a 200 (Vault answers sign and verify
        // batches so; encrypt's partial_failure_response_code is no parameter of theirs).
        var badSign = new object[] { new { input = inputs[0], reference = "good" }, new { input = "%%%", reference = "bad" } };
        var partial = (await c.PostAsync("transit/sign/signer", new { batch_input = badSign })).Expect(200);
        Assert.Equal(["good", "bad"], partial.Data["batch_results"]!.AsArray().Select(r => r!["reference"]!.GetValue<string>()));
        Assert.NotNull(partial.Data["batch_results"]![0]!["signature"]);
        Assert.StartsWith("batch_input[1]: invalid 'input'", partial.Data["batch_results"]![1]!["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("'partial_failure_response_code'", (await c.PostAsync("transit/sign/signer", new { batch_input = badSign, partial_failure_response_code = 207 })).Expect(400).Errors.Single(), StringComparison.Ordinal);

        var badVerify = new object[] { new { input = inputs[0], signature = signatures[0] }, new { input = inputs[0] }, new { input = inputs[0], signature = "vault:v9:AAAA" } };
        var failed = (await c.PostAsync("transit/verify/signer", new { batch_input = badVerify })).Expect(200);
        Assert.True(failed.Data["batch_results"]![0]!["valid"]!.GetValue<bool>());
        Assert.Contains("'signature'", failed.Data["batch_results"]![1]!["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("'signature'", failed.Data["batch_results"]![2]!["error"]!.GetValue<string>(), StringComparison.Ordinal);
        var allFailed = (await c.PostAsync("transit/verify/signer", new { batch_input = new object[] { new { input = inputs[0] } } })).Expect(200);
        Assert.Contains("'signature'", allFailed.Data["batch_results"]![0]!["error"]!.GetValue<string>(), StringComparison.Ordinal);

        // The batch's own shape and its request-level parameters are checked before any item is signed.
        var cases = new (string Path, object Body, string Named)[]
        {
            ("transit/sign/signer", new { batch_input = Array.Empty<object>() }, "'batch_input'"),
            ("transit/sign/signer", new { batch_input = new object[] { "text" } }, "'batch_input'"),
            ("transit/sign/signer", new { input = inputs[0], batch_input = new object[] { new { input = inputs[0] } } }, "'input'"),
            ("transit/sign/signer", new { key_version = 9, batch_input = new object[] { new { input = inputs[0] } } }, "'key_version'"),
            ("transit/sign/signer", new { hash_algorithm = "md5", batch_input = new object[] { new { input = inputs[0] } } }, "'hash_algorithm'"),
            ("transit/verify/signer", new { key_version = 1, input = inputs[0], signature = signatures[0] }, "'key_version'"),
            ("transit/verify/signer", new { input = inputs[0], hmac = "vault:v1:AAAA" }, "'hmac'"),
        };
        foreach (var (path, body, named) in cases)
        {
            Assert.Contains(named, (await c.PostAsync(path, body)).Expect(400).Errors.Single(), StringComparison.Ordinal);
        }

        var tooMany = Enumerable.Range(0, 1001).Select(_ => new { input = inputs[0] }).ToArray();
        Assert.Contains("'batch_input'", (await c.PostAsync("transit/verify/signer", new { batch_input = tooMany })).Expect(400).Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bad_input_is_a_400_naming_the_field_and_writes_nothing()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        Assert.Contains("'type'", (await c.PostAsync("transit/keys/k", new { type = "rsa-4096" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'exportable'", (await c.PostAsync("transit/keys/k", new { exportable = true })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("'colour'", (await c.PostAsync("transit/keys/k", new { colour = "red" })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        (await c.ListAsync("transit/keys")).Expect(404);

        (await c.PostAsync("transit/keys/k")).Expect(204);
        var good = (await c.PostAsync("transit/encrypt/k", new { plaintext = B64("x") })).Expect(200).Data["ciphertext"]!.GetValue<string>();
        var cases = new (string Path, object Body, string Named)[]
        {
            ("transit/encrypt/k", new { }, "'plaintext'"),
            ("transit/encrypt/k", new { plaintext = "%%%" }, "'plaintext'"),
            ("transit/encrypt/k", new { plaintext = B64("x"), key_version = 9 }, "'key_version'"),
            ("transit/encrypt/k", new { plaintext = B64("x"), context = B64("c") }, "'context'"),
            ("transit/decrypt/k", new { ciphertext = "vault:v1" }, "'ciphertext'"),
            ("transit/decrypt/k", new { ciphertext = "vault:vX:AAAA" }, "'ciphertext'"),
            ("transit/decrypt/k", new { ciphertext = "vault:v7:" + good["vault:v1:".Length..] }, "'ciphertext'"),
            ("transit/decrypt/k", new { ciphertext = good[..^4] + "AAAA" }, "'ciphertext'"),
            ("transit/decrypt/k", new { ciphertext = "vault:v1:AAAA" }, "'ciphertext'"),
            ("transit/decrypt/k", new { batch_input = "nope" }, "'batch_input'"),
            ("transit/datakey/plaintext/k", new { bits = 100 }, "'bits'"),
            ("transit/keys/k/config", new { min_decryption_version = 5 }, "'min_decryption_version'"),
            ("transit/keys/k/config", new { min_encryption_version = 5 }, "'min_encryption_version'"),
            ("transit/keys/k/config", new { deletion_allowed = "perhaps" }, "'deletion_allowed'"),
            ("transit/sign/k", new { input = B64("x") }, "does not support signing"),
            ("transit/sign/k", new { input = B64("x"), hash_algorithm = "md5" }, "'hash_algorithm'"),
        };
        foreach (var (path, body, named) in cases)
        {
            var result = (await c.PostAsync(path, body)).Expect(400);
            Assert.Contains(named, result.Errors.Single(), StringComparison.Ordinal);
        }

        // Encrypting under a key that does not exist would create it (Vault's upsert): bad input creates nothing.
        foreach (var (body, named) in new (object, string)[] { (new { }, "'plaintext'"), (new { plaintext = "%%%" }, "'plaintext'"), (new { plaintext = B64("x"), type = "ed25519" }, "'type'"), (new { plaintext = B64("x"), colour = 1 }, "'colour'"), (new { batch_input = new[] { new { plaintext = "%%%" } } }, "'plaintext'") })
        {
            Assert.Contains(named, (await c.PostAsync("transit/encrypt/missing", body)).Expect(400).Raw, StringComparison.Ordinal);
        }

        Assert.Contains("no transit key", (await c.PostAsync("transit/decrypt/missing", new { ciphertext = good })).Expect(400).Errors.Single(), StringComparison.Ordinal);
        var read = (await c.GetAsync("transit/keys/k")).Expect(200).Data;
        Assert.Equal(1, read["latest_version"]!.GetValue<int>());
        Assert.Equal(1, read["min_decryption_version"]!.GetValue<int>());
        Assert.False(read["deletion_allowed"]!.GetValue<bool>());
        Assert.Equal(["k"], (await c.ListAsync("transit/keys")).Expect(200).Data["keys"]!.AsArray().Select(k => k!.GetValue<string>()));
    }

    [Fact]
    public async Task Encrypting_under_a_missing_key_creates_it_with_create_capability_as_vaults_upsert()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        (await c.PutAsync("sys/policies/acl/enc", new { policy = """path "transit/encrypt/*" { capabilities = ["update"] }""" })).Expect(204);
        var upsertPolicy = """path "transit/encrypt/*" { capabilities = ["create", "update"] }""" + "\n" + """path "transit/decrypt/*" { capabilities = ["update"] }""";
        (await c.PutAsync("sys/policies/acl/upsert", new { policy = upsertPolicy })).Expect(204);
        var updateOnly = (await c.PostAsync("auth/token/create", new { policies = new[] { "enc" } })).Expect(200).Auth["client_token"]!.GetValue<string>();
        var upsert = (await c.PostAsync("auth/token/create", new { policies = new[] { "upsert" } })).Expect(200).Auth["client_token"]!.GetValue<string>();

        // update alone does not create a key, as in Vault.
        (await c.PostAsync("transit/encrypt/orders", new { plaintext = B64("x") }, updateOnly)).Expect(403);
        (await c.ListAsync("transit/keys")).Expect(404);

        var ciphertext = (await c.PostAsync("transit/encrypt/orders", new { plaintext = B64("secret") }, upsert)).Expect(200).Data["ciphertext"]!.GetValue<string>();
        Assert.StartsWith("vault:v1:", ciphertext, StringComparison.Ordinal);
        var key = (await c.GetAsync("transit/keys/orders")).Expect(200).Data;
        Assert.Equal("aes256-gcm96", key["type"]!.GetValue<string>());
        Assert.Equal(B64("secret"), (await c.PostAsync("transit/decrypt/orders", new { ciphertext }, upsert)).Expect(200).Data["plaintext"]!.GetValue<string>());

        // Once it exists, update is enough and the same key encrypts.
        var again = (await c.PostAsync("transit/encrypt/orders", new { plaintext = B64("more"), type = "aes256-gcm96" }, updateOnly)).Expect(200).Data;
        Assert.Equal(1, again["key_version"]!.GetValue<int>());
    }
}
