using System.ComponentModel;
using System.Diagnostics;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Morphisms.Agent.App;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Secrets;
using Morphisms.Agent.Telemetry;
using Morphisms.Agent.Tls;

namespace Morphisms.Agent.Lifecycle;

/// <summary>
/// Keeps a running instance provisioned: renews the token at half its TTL, re-attests (new key, token and
/// certificate, hot-swapped into the terminator) when renewal hits the max TTL or fails, or when the certificate is
/// two thirds through the life it had left when it came, applies new secret versions to the running app, and after each
/// secret poll checks again who listens on the app's port (<see cref="AppProcess.CheckListener"/>). A KMS that is away, a bundle
/// version that cannot be used, a deleted bundle, or TEE evidence that cannot be had for a moment leave the app
/// serving what it has (logged and retried); a KMS that refuses the instance even after a fresh attestation ends the
/// loop, and the agent stops the app.
/// </summary>
public sealed class SessionMaintainer(
    AgentOptions options, KmsClient kms, Attestor attestor, TlsTerminator terminator, SecretDirectory secrets, AgentLog log)
{
    private Attestation _current = null!;
    private DateTimeOffset _tokenExpires;
    // KV versions count per path, and a re-attestation may name another path: a version means something only with its path.
    private string _secretPath = null!;
    private int _secretVersion;
    private (string Path, int Version)? _rejected;

    /// <summary>The attestation (token, key, certificate) in use.</summary>
    public Attestation Current => _current;

    /// <summary>The app to signal after secret changes.</summary>
    public AppProcess? App { get; set; }

    /// <summary>How many times the instance has re-attested.</summary>
    public int Reattestations { get; private set; }

    /// <summary>How many secret versions have been applied after start.</summary>
    public int SecretUpdates { get; private set; }

    /// <summary>The secret directory it writes (for tests to interfere with an update).</summary>
    internal SecretDirectory Secrets => secrets;

    /// <summary>Runs just before a new version's files are written, so a test can hold the maintainer inside an apply.</summary>
    internal Action? BeforeApplyForTests { get; set; }

    /// <summary>Starts from the cold-start attestation and bundle version.</summary>
    public void Begin(Attestation attestation, int secretVersion)
    {
        _current = attestation;
        _tokenExpires = attestation.At + attestation.Login.LeaseDuration;
        _secretPath = options.SecretPathFor(attestation.Login);
        _secretVersion = secretVersion;
    }

    /// <summary>Runs until cancelled; KMS outages and evidence failures are logged and retried, refusals end the loop with an exception.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var time = options.Time;
        var nextSecrets = time.GetUtcNow() + options.SecretsPollInterval;
        var notBefore = DateTimeOffset.MinValue;
        while (!ct.IsCancellationRequested)
        {
            var now = time.GetUtcNow();
            var renewAt = _tokenExpires - (_current.Login.LeaseDuration / 2);
            var rotateCertAt = CertificateRolloverAt(_current.Certificate.Certificate, _current.At);

            // A round that moved nothing forward (a token without a lease, a certificate already two thirds through its
            // life by a clock running ahead) must not become a loop of logins against the KMS.
            var next = new[] { new[] { renewAt, rotateCertAt, nextSecrets }.Min(), notBefore }.Max();
            if (next > now)
            {
                await Task.Delay(next - now, time, ct).ConfigureAwait(false);
                continue;
            }

            notBefore = now + options.KmsRetryDelay;
            try
            {
                if (now >= rotateCertAt)
                {
                    await ReattestAsync("certificate rollover", ct).ConfigureAwait(false);
                }
                else if (now >= renewAt)
                {
                    await RenewAsync(ct).ConfigureAwait(false);
                }

                if (time.GetUtcNow() >= nextSecrets)
                {
                    await RefreshSecretsAsync(ct).ConfigureAwait(false);

                    // A reload may have the app reopen its listener, and answering a SIGHUP takes it a moment that no
                    // signal reports: so the readiness check of who listens on its port runs again after each poll (its
                    // reload included), not only at once. What it refuses ends the loop, and the agent stops the app.
                    App?.CheckListener(options.AppEndPoint);
                    nextSecrets = time.GetUtcNow() + options.SecretsPollInterval;
                }
            }
            catch (Exception e) when (e is AgentException { ExitCode: AgentExitCodes.KmsUnavailable or AgentExitCodes.Evidence } or KmsCallException or InvalidDataException)
            {
                // The app keeps serving with what it has; the next round tries again. (A KmsCallException here is a
                // status no step expects, e.g. a 404 on renew-self; InvalidDataException a malformed renewal answer.)
                // Evidence that fails during a re-attestation (a busy SNP firmware, a configfs-tsm entry in use) is as
                // transient as a KMS outage and no verdict on the instance; only a cold start fails fast on it.
                log.Warn(e is AgentException { ExitCode: AgentExitCodes.Evidence } ? "evidence_unavailable" : "kms_unavailable", e.Message);
                nextSecrets = time.GetUtcNow() + options.SecretsPollInterval;
                await Task.Delay(options.KmsRetryDelay, time, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// When to replace <paramref name="certificate"/>, received at <paramref name="receivedAt"/>: two thirds through the
    /// life it had left then. Not two thirds from its NotBefore: the KMS backdates that by 30 s for clock skew, which
    /// would bring every rollover 20 s early (after 30 s of a 1 minute certificate's 60, and at once for one of 15 s or
    /// less). A NotBefore later than the receipt (this clock behind the KMS's) counts from the NotBefore instead; a
    /// certificate already expired by this clock is due at once (the KMS retry delay paces such rounds).
    /// </summary>
    internal static DateTimeOffset CertificateRolloverAt(X509Certificate2 certificate, DateTimeOffset receivedAt)
    {
        var notBefore = new DateTimeOffset(certificate.NotBefore.ToUniversalTime());
        var notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        var from = receivedAt > notBefore ? receivedAt : notBefore;
        return from + ((notAfter - from) * 2 / 3);
    }

    private async Task RenewAsync(CancellationToken ct)
    {
        var ttl = _current.Login.LeaseDuration;
        try
        {
            var granted = await kms.RenewSelfAsync(_current.Login.Token, ttl, ct).ConfigureAwait(false);

            // A shorter grant than asked means the max TTL is near: re-attest rather than let the token lapse.
            if (granted < ttl)
            {
                await ReattestAsync("token max TTL reached", ct).ConfigureAwait(false);
                return;
            }

            _tokenExpires = options.Time.GetUtcNow() + granted;
            log.Info("token_renewed", "token renewed", new JsonObject { ["ttl_s"] = granted.TotalSeconds });
        }
        catch (KmsCallException e) when (e.Status is 400 or 403)
        {
            await ReattestAsync($"renewal refused ({e.Errors})", ct).ConfigureAwait(false);
        }
    }

    private async Task ReattestAsync(string reason, CancellationToken ct)
    {
        var fresh = await attestor.AttestAsync(null, ct).ConfigureAwait(false);
        var old = _current;
        _current = fresh;
        _tokenExpires = fresh.At + fresh.Login.LeaseDuration;
        terminator.Swap(fresh.Certificate);
        Reattestations++;
        log.Info("reattested", $"re-attested: {reason}", new JsonObject
        {
            ["certificate"] = fresh.Certificate.Issued ? "kms-issued" : "self-signed",
            ["not_after"] = fresh.Certificate.Certificate.NotAfter.ToUniversalTime().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        });

        // Open connections keep using the old certificate object; the key can go once no new handshake can pick it.
        old.Identity.Dispose();
    }

    private async Task RefreshSecretsAsync(CancellationToken ct)
    {
        var path = options.SecretPathFor(_current.Login);
        KvSecret secret;
        try
        {
            (path, secret) = await ReadSecretsAsync(path, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KmsCallException { Status: 404 } or InvalidDataException)
        {
            // Deleted (or its latest version deleted): what the app has stays until someone writes a new version or
            // takes the instance's access away.
            log.Warn("secrets_unavailable", $"the secret bundle at {options.SecretPathFor(_current.Login)} cannot be read ({e.Message}): the app keeps version {_secretVersion}");
            return;
        }

        // A bundle at another path than the app's is new whatever its version.
        if ((path == _secretPath && secret.Version <= _secretVersion) || _rejected == (path, secret.Version))
        {
            return;
        }

        SecretBundle bundle;
        bool changed;
        try
        {
            bundle = SecretBundle.Parse(secret.Version, secret.Data);

            // Stopping: the agent wipes the directory once this loop has ended, and nothing is written after that.
            ct.ThrowIfCancellationRequested();
            BeforeApplyForTests?.Invoke();
            changed = secrets.Apply(bundle.Files);
        }
        catch (InvalidDataException e)
        {
            _rejected = (path, secret.Version);
            log.Warn("secrets_rejected", $"secret bundle version {secret.Version} is not usable ({e.Message}): the app keeps version {_secretVersion}");
            return;
        }
        catch (SecretUpdateException e) when (e.Changed.Count > 0)
        {
            // Some files are the new version's, the rest the old one's: said as such, and the app is told to reload
            // what changed. The version is not recorded as applied, so the next poll completes it (unchanged files
            // are skipped).
            log.Warn("secrets_partially_applied", $"secret bundle version {secret.Version} was applied only in part: {e.Message}; the next poll tries again", new JsonObject
            {
                ["version"] = secret.Version,
                ["files_changed"] = new JsonArray([.. e.Changed.Select(name => (JsonNode?)JsonValue.Create(name))]),
            });
            await ReloadAsync(ct).ConfigureAwait(false);
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing was replaced (staging failed, or the first rename did); the next poll tries again.
            log.Warn("secrets_not_applied", $"secret bundle version {secret.Version} could not be written ({e.Message}): the app keeps version {_secretVersion}");
            return;
        }

        _secretPath = path;
        _secretVersion = secret.Version;
        SecretUpdates++;
        log.Info("secrets_updated", $"secret bundle version {secret.Version} at {path} applied", new JsonObject
        {
            ["path"] = path,
            ["version"] = secret.Version,
            ["files_changed"] = changed,
            ["note"] = bundle.Env.Count > 0 || bundle.Argv.Count > 0 ? "env/argv changes apply at the next instance start" : null,
        });
        await ReloadAsync(ct).ConfigureAwait(false);
    }

    // A refusal may be this token's alone (revoked, or its policies changed): one fresh attestation, then the verdict
    // stands. A login the KMS refuses ends the loop from inside ReattestAsync. Returns the path read: the fresh login
    // may name another.
    private async Task<(string Path, KvSecret Secret)> ReadSecretsAsync(string path, CancellationToken ct)
    {
        try
        {
            return (path, await kms.ReadKvAsync(path, _current.Login.Token, ct).ConfigureAwait(false));
        }
        catch (KmsCallException e) when (e.Status is 401 or 403)
        {
            await ReattestAsync($"secret read refused ({e.Errors})", ct).ConfigureAwait(false);
        }

        path = options.SecretPathFor(_current.Login);
        try
        {
            return (path, await kms.ReadKvAsync(path, _current.Login.Token, ct).ConfigureAwait(false));
        }
        catch (KmsCallException e) when (e.Status is 401 or 403)
        {
            throw new AgentException(AgentExitCodes.Secrets, $"deprovisioned: the KMS refuses the secret bundle to a freshly attested instance ({e.Errors})", e);
        }
    }

    private async Task ReloadAsync(CancellationToken ct)
    {
        // Stopping: the app is on its way out (or gone, its pid free for another process to take), so no signal.
        ct.ThrowIfCancellationRequested();
        if (options.ReloadCommand is { } command)
        {
            var info = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", command }, UseShellExecute = false };

            // The reload command acts for the app, so it sees the OS trust store the app sees, not the agent's empty one,
            // and not the agent's report token.
            Tls.SystemTrustStore.RestoreFor(info);
            Telemetry.ReportTokenHandOver.RemoveFrom(info.Environment);
            Process? started;
            try
            {
                started = Process.Start(info);
            }
            catch (Exception e) when (e is Win32Exception or InvalidOperationException or PlatformNotSupportedException)
            {
                // No shell, no memory to fork, a command too long to exec: the files are in place and the app keeps
                // serving what it has, as with a command that fails. The message names /bin/sh, never the command,
                // which is the operator's and may carry what the log should not.
                log.Warn("reload_failed", $"reload command could not be started: {e.Message}");
                return;
            }

            using var process = started;
            if (process is not null)
            {
                // The loop that renews the token and rolls the certificate over waits here: a command that hangs must
                // not stop them, so it gets ReloadTimeout, and is killed (with whatever it started) on the way out.
                using var timeout = new CancellationTokenSource(options.ReloadTimeout, options.Time);
                using var waiting = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
                try
                {
                    await process.WaitForExitAsync(waiting.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    try
                    {
                        process.Kill(entireProcessTree: true);
                    }
                    catch (Exception e) when (e is AggregateException or Win32Exception or InvalidOperationException or NotSupportedException)
                    {
                        // Part of its tree may live on; the loop must not end over it (renewal and rollover still matter).
                        ct.ThrowIfCancellationRequested();
                        log.Warn("reload_failed", $"reload command still running after {options.ReloadTimeout.TotalSeconds:0.###} s and could not be killed: {e.Message}");
                        return;
                    }

                    ct.ThrowIfCancellationRequested();
                    log.Warn("reload_failed", $"reload command still running after {options.ReloadTimeout.TotalSeconds:0.###} s: killed");
                    return;
                }

                if (process.ExitCode != 0)
                {
                    log.Warn("reload_failed", $"reload command exited with {process.ExitCode}");
                }
            }

            return;
        }

        App?.Reload();
    }
}
