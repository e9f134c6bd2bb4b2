using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Kms.Storage;

namespace Morphisms.Kms.Tests.Updates;

/// <summary>
/// Deleting a function commits the deletion, then revokes what the function was issued. That revocation must not be
/// lost between the two: it goes on when the caller goes away, and when it did not finish (the node stopped) a DELETE
/// again finishes it, although no function is registered any more. Neither reaches a function registered afresh under
/// the name meanwhile.
/// </summary>
public sealed class DeletionRevocationTests : IDisposable
{
    private const string Index = "morphisms/issued/signer/";
    private readonly string _dir = Directory.CreateTempSubdirectory("kms-deletion-").FullName;

    [Fact]
    public async Task A_delete_whose_caller_goes_away_after_the_commit_still_revokes_everything()
    {
        var storage = new FaultStorage();
        await using var kms = await StartAsync(storage);
        var c = kms.Client;
        await AttestFlow.RegisterSignerAsync(c);
        var (token, serial) = await LoginAsync(c);

        // The caller gives up once the deletion is committed and the revocation has begun.
        storage.HoldRevocationUntilTheCallerGoes();
        using var request = new HttpRequestMessage(HttpMethod.Delete, "/v1/morphisms/functions/signer");
        request.Headers.Add("X-Vault-Token", kms.RootToken);
        using var caller = new CancellationTokenSource();
        var delete = c.Http.SendAsync(request, caller.Token);
        await storage.RevocationReached.WaitAsync(TimeSpan.FromSeconds(30));
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => delete);

        // The server saw the caller go (else this test would prove nothing), and the revocation went on regardless.
        Assert.True(await storage.CallerWentAway.WaitAsync(TimeSpan.FromSeconds(30)));
        await EventuallyAsync(async () => (await c.PostAsync("auth/token/lookup", new { token })).Status == 403);
        (await c.GetAsync("morphisms/functions/signer")).Expect(404);
        Assert.True((await c.GetAsync("pki/cert/" + serial)).Expect(200).Data["revocation_time"]!.GetValue<long>() > 0);
        Assert.Empty(await storage.Inner.ListAsync(Index));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_delete_again_finishes_a_revocation_the_first_did_not(bool owned)
    {
        var storage = new FaultStorage();
        await using var kms = await StartAsync(storage);
        var c = kms.Client;
        if (owned)
        {
            await OwnedFunction.RegisterAsync(c);
        }
        else
        {
            await AttestFlow.RegisterSignerAsync(c);
        }

        var (token, serial) = await LoginAsync(c);

        // The node stops between committing the deletion and revoking: the function is gone, its credentials are not.
        storage.FailRevocationOnce();
        Assert.Equal(500, (await c.DeleteAsync("morphisms/functions/signer")).Status);
        (await c.GetAsync("morphisms/functions/signer")).Expect(404);
        (await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(owned ? 200 : 404);
        (await c.PostAsync("auth/token/lookup", new { token })).Expect(200);

        // A DELETE again finds nothing registered, and finishes the job (audited, as it revoked something).
        (await c.DeleteAsync("morphisms/functions/signer")).Expect(204);
        (await c.PostAsync("auth/token/lookup", new { token })).Expect(403);
        Assert.True((await c.GetAsync("pki/cert/" + serial)).Expect(200).Data["revocation_time"]!.GetValue<long>() > 0);
        Assert.Empty(await storage.Inner.ListAsync(Index));

        // Once more there is nothing left to do: still 204, and no second event.
        (await c.DeleteAsync("morphisms/functions/signer")).Expect(204);
        (await c.DeleteAsync("morphisms/functions/nobody")).Expect(204);
        var events = (await File.ReadAllLinesAsync(Path.Combine(_dir, "audit.log"))).Where(l => l.Contains("\"type\":\"function-revocation-completed\"", StringComparison.Ordinal)).ToList();
        var completed = Assert.Single(events);
        Assert.Contains("\"tokens_revoked\":1", completed, StringComparison.Ordinal);
        Assert.Contains("\"certificates_revoked\":1", completed, StringComparison.Ordinal);
        Assert.Contains($"\"tombstone\":{(owned ? "true" : "false")}", completed, StringComparison.Ordinal);
        Assert.Contains("\"last_revision\":1", completed, StringComparison.Ordinal);
    }

    /// <summary>
    /// An owned function's deletion commits its tombstone and then fails to revoke (the node stopped): the tombstone,
    /// with the updates it cancelled, is audited all the same, and once — a DELETE again finds no record to tombstone.
    /// </summary>
    [Fact]
    public async Task A_tombstone_is_audited_with_its_cancelled_updates_although_the_revocation_after_it_failed()
    {
        var storage = new FaultStorage();
        await using var kms = await StartAsync(storage);
        var c = kms.Client;
        await OwnedFunction.RegisterAsync(c);
        (await c.PutAsync("morphisms/functions/signer", OwnedFunction.Values(OwnedFunction.NewSnp))).Expect(200);
        var (token, _) = await LoginAsync(c);

        storage.FailRevocationOnce();
        Assert.Equal(500, (await c.DeleteAsync("morphisms/functions/signer")).Status);
        (await c.GetAsync("morphisms/functions/signer/tombstone")).Expect(200);
        (await c.PostAsync("auth/token/lookup", new { token })).Expect(200);
        (await c.DeleteAsync("morphisms/functions/signer")).Expect(204);
        (await c.PostAsync("auth/token/lookup", new { token })).Expect(403);

        var tombstoned = Assert.Single(await File.ReadAllLinesAsync(Path.Combine(_dir, "audit.log")), l => l.Contains("\"type\":\"function-tombstoned\"", StringComparison.Ordinal));
        Assert.Contains("\"cancelled_updates\":[1]", tombstoned, StringComparison.Ordinal);
    }

    /// <summary>
    /// The name is registered afresh and an instance logs in while a deletion's revocation walks the issued index: the
    /// deletion's own (<paramref name="retry"/> false) or a DELETE again finishing one that was cut short (true). The
    /// walk revokes what the deleted function was issued and nothing of the new function's.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_revocation_racing_a_fresh_registration_of_the_name_leaves_the_new_functions_credentials_alone(bool retry)
    {
        var storage = new FaultStorage();
        await using var kms = await StartAsync(storage);
        var c = kms.Client;
        await AttestFlow.RegisterSignerAsync(c);
        var (oldToken, oldSerial) = await LoginAsync(c);

        if (retry)
        {
            storage.FailRevocationOnce();
            Assert.Equal(500, (await c.DeleteAsync("morphisms/functions/signer")).Status);
            (await c.PostAsync("auth/token/lookup", new { token = oldToken })).Expect(200);
        }

        storage.HoldRevocation(afterDelete: !retry);
        var delete = c.DeleteAsync("morphisms/functions/signer");
        await storage.RevocationReached.WaitAsync(TimeSpan.FromSeconds(30));

        // Meanwhile: the same name, registered afresh (nothing left of the old function stops that), and a login.
        (await c.GetAsync("morphisms/functions/signer")).Expect(404);
        Assert.Equal(2, (await c.PutAsync("morphisms/functions/signer", AttestFlow.SignerRegistration())).Expect(200).Data["current_revision"]!.GetValue<int>());
        var (newToken, newSerial) = await LoginAsync(c);
        storage.ReleaseRevocation();
        (await delete).Expect(204);

        // The deleted function's credentials are gone; the new function's work, and its registration stands.
        (await c.PostAsync("auth/token/lookup", new { token = oldToken })).Expect(403);
        Assert.True((await c.GetAsync("pki/cert/" + oldSerial)).Expect(200).Data["revocation_time"]!.GetValue<long>() > 0);
        Assert.Equal("signer", (await c.PostAsync("auth/token/lookup", new { token = newToken })).Expect(200).Data["meta"]!["function"]!.GetValue<string>());
        Assert.Equal(0, (await c.GetAsync("pki/cert/" + newSerial)).Expect(200).Data["revocation_time"]!.GetValue<long>());
        Assert.Equal(["2/"], await storage.Inner.ListAsync(Index));
        (await c.GetAsync("morphisms/functions/signer")).Expect(200);
    }

    /// <summary>
    /// A login matched the function's values, and before it commits what it issued the function is deleted and the
    /// name registered afresh: the deletion's walk cannot see the login's credentials yet, and the new function has no
    /// revision 1 to accept them under, so the login revokes them itself and is refused.
    /// </summary>
    [Fact]
    public async Task A_login_that_matched_the_deleted_function_is_refused_although_the_name_is_registered_again()
    {
        var storage = new FaultStorage();
        await using var kms = await StartAsync(storage);
        var c = kms.Client;
        using var instance = new FunctionInstance();
        var login = await LoginHeldBeforeItsCommitAsync(c, storage, instance);
        (await c.DeleteAsync("morphisms/functions/signer")).Expect(204);
        (await c.PutAsync("morphisms/functions/signer", AttestFlow.SignerRegistration())).Expect(200);
        storage.ReleaseRevocation();

        var refused = await login;
        Assert.Equal(403, refused.Status);
        Assert.Contains("attestation refused: function signer was deleted", refused.Raw, StringComparison.Ordinal);
        Assert.Empty(await storage.Inner.ListAsync(Index + "1/"));

        // The function registered again is not affected: its own logins work, under its own revision.
        using var next = new FunctionInstance();
        Assert.Equal(2, (await OwnedFunction.LoginAsync(c, next, FunctionInstance.SnpMeasurement)).Expect(200).Data["revision"]!.GetValue<int>());
    }

    /// <summary>
    /// A login matched revision 1, and before it commits a hundred newer revisions push revision 1 out of the history
    /// the registry keeps: no deletion happened, so the refusal says the revision is gone, not the function.
    /// </summary>
    [Fact]
    public async Task A_login_whose_revision_left_the_kept_history_meanwhile_is_refused_as_retired_not_deleted()
    {
        var storage = new FaultStorage();
        await using var kms = await StartAsync(storage);
        var c = kms.Client;
        using var instance = new FunctionInstance();
        var login = await LoginHeldBeforeItsCommitAsync(c, storage, instance);
        for (var i = 1; i <= 100; i++)
        {
            var another = Hex.Of(SHA384.HashData(BitConverter.GetBytes(i)));
            (await c.PutAsync("morphisms/functions/signer", new
            {
                owners = new[] { "alice@example.com" },
                policies = new[] { "signer-read" },
                secret_path = "secret/data/signer",
                simulated = new { snp = new[] { Hex.Of(FunctionInstance.SnpMeasurement), another } },
            })).Expect(200);
        }

        var revisions = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["revisions"]!.AsArray();
        Assert.DoesNotContain(revisions, r => r!["revision"]!.GetValue<int>() == 1);
        storage.ReleaseRevocation();

        var refused = await login;
        Assert.Equal(403, refused.Status);
        Assert.Contains("revision 1 of function signer was retired", refused.Raw, StringComparison.Ordinal);
        Assert.DoesNotContain("was deleted", refused.Raw, StringComparison.Ordinal);
        Assert.Empty(await storage.Inner.ListAsync(Index + "1/"));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Registers signer and starts a login as it, held once it matched revision 1 and before it commits.</summary>
    private static async Task<Task<VaultResult>> LoginHeldBeforeItsCommitAsync(VaultHttp c, FaultStorage storage, FunctionInstance instance)
    {
        await AttestFlow.RegisterSignerAsync(c);
        storage.HoldLoginCommit();
        var login = OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement);
        await storage.RevocationReached.WaitAsync(TimeSpan.FromSeconds(30));
        return login;
    }

    private Task<TestKms> StartAsync(FaultStorage storage) =>
        TestKms.StartUnsealedAsync(o => SimulatedTees.TrustingSimulated(o) with { AuditLogPath = Path.Combine(_dir, "audit.log") }, physical: storage);

    /// <summary>Logs in as signer: the token and the certificate's serial.</summary>
    private static async Task<(string Token, string Serial)> LoginAsync(VaultHttp c)
    {
        using var instance = new FunctionInstance();
        var login = (await OwnedFunction.LoginAsync(c, instance, FunctionInstance.SnpMeasurement)).Expect(200);
        using var certificate = X509Certificate2.CreateFromPem(login.Data["certificate"]!.GetValue<string>());
        return (login.Auth["client_token"]!.GetValue<string>(), certificate.SerialNumber.ToLowerInvariant());
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "not revoked in 10 s");
            await Task.Delay(50);
        }
    }

    /// <summary>
    /// In-memory storage that stops the first listing of signer's issued index after the deletion's commit: by failing
    /// it (the node stopped), or by holding it until the request that committed the deletion is aborted and then
    /// honouring the listing's own cancellation token (so a revocation on the request's token is abandoned). It can also
    /// hold a revocation's listing, or a login's commit, until the test has done what races with it.
    /// </summary>
    private sealed class FaultStorage : ForwardingStorage
    {
        private const string FunctionKey = "morphisms/functions/signer";
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource<bool> _callerGone = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _mode;
        private bool _holdAfterDelete;
        private CancellationToken _commitToken;

        /// <summary>Completes when the held listing is reached.</summary>
        public Task RevocationReached => _reached.Task;

        /// <summary>Whether the request that committed the deletion was aborted while the listing was held.</summary>
        public Task<bool> CallerWentAway => _callerGone.Task;

        public void FailRevocationOnce() => _mode = 1;

        public void HoldRevocationUntilTheCallerGoes() => _mode = 2;

        /// <summary>
        /// Holds the next listing of the whole index until <see cref="ReleaseRevocation"/>: with
        /// <paramref name="afterDelete"/>, the next one after the deletion's commit (the deletion itself may list the
        /// index first, under the registry's lock); without, the next one at all (a DELETE of a name with a mark lists
        /// it only to revoke).
        /// </summary>
        public void HoldRevocation(bool afterDelete)
        {
            _holdAfterDelete = afterDelete;
            _mode = 3;
        }

        public void ReleaseRevocation() => _release.TrySetResult();

        /// <summary>Holds the next commit of a login's index entries for revision 1 until <see cref="ReleaseRevocation"/>.</summary>
        public void HoldLoginCommit() => _mode = 4;

        public override Task DeleteAsync(string key, CancellationToken cancellationToken = default)
        {
            Committing([key], cancellationToken);
            return Inner.DeleteAsync(key, cancellationToken);
        }

        public override async Task TransactAsync(IReadOnlyList<StorageOperation> operations, CancellationToken cancellationToken = default)
        {
            if (_mode == 4 && operations.Any(o => o.Key.StartsWith(Index + "1/tokens/", StringComparison.Ordinal)) && Interlocked.Exchange(ref _mode, 0) == 4)
            {
                _reached.TrySetResult();
                await _release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            Committing([.. operations.Where(o => o.Value is null).Select(o => o.Key)], cancellationToken);
            await Inner.TransactAsync(operations, cancellationToken);
        }

        public override async Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken = default)
        {
            if (prefix == Index && _mode == 3 && (!_holdAfterDelete || _commitToken.CanBeCanceled) && Interlocked.Exchange(ref _mode, 0) == 3)
            {
                _reached.TrySetResult();
                await _release.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            if (prefix.StartsWith(Index, StringComparison.Ordinal) && _commitToken.CanBeCanceled && _mode is 1 or 2)
            {
                var mode = Interlocked.Exchange(ref _mode, 0);
                if (mode == 1)
                {
                    throw new IOException("simulated: the node stopped");
                }

                if (mode == 2)
                {
                    _reached.TrySetResult();
                    try
                    {
                        await Task.Delay(TimeSpan.FromSeconds(20), _commitToken);
                    }
                    catch (OperationCanceledException)
                    {
                    }

                    _callerGone.TrySetResult(_commitToken.IsCancellationRequested);
                    cancellationToken.ThrowIfCancellationRequested();
                }
            }

            return await Inner.ListAsync(prefix, cancellationToken);
        }

        public override Task<IReadOnlyList<KeyValuePair<string, byte[]>>> ReadAllAsync(CancellationToken cancellationToken = default) => Inner.ReadAllAsync(cancellationToken);

        // The deletion's commit runs on the request's token: remember it, to see when the caller goes away.
        private void Committing(IEnumerable<string> deleted, CancellationToken cancellationToken)
        {
            if (_mode != 0 && deleted.Contains(FunctionKey))
            {
                _commitToken = cancellationToken;
            }
        }
    }
}
