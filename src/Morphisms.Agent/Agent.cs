using System.Text.Json.Nodes;
using Morphisms.Agent.App;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Lifecycle;
using Morphisms.Agent.Secrets;
using Morphisms.Agent.Telemetry;
using Morphisms.Agent.Tls;
using Morphisms.Attestation.Trust;

namespace Morphisms.Agent;

/// <summary>
/// The guest agent: attest, fetch and write secrets, start the app behind the TLS terminator, keep everything fresh,
/// and drain on stop. The app is started only after attestation and secret provisioning succeeded.
/// </summary>
public sealed class Agent(AgentOptions options, byte[] launchConfig)
{
    /// <summary>
    /// How long connections still open once the app has stopped get before the agent closes them and wipes the secrets.
    /// The host's drain timeout (Morphisms.Serving's <c>SupervisorOptions.DrainTimeout</c>) must exceed
    /// <see cref="AgentOptions.DrainTimeout"/> plus this, or it kills the agent before the wipe.
    /// </summary>
    public static readonly TimeSpan ConnectionDrain = TimeSpan.FromSeconds(1);

    /// <summary>The TLS port once serving (0 before).</summary>
    public int Port { get; private set; }

    /// <summary>Completes when the app answered and the instance is serving.</summary>
    public Task Ready => _ready.Task;

    /// <summary>The maintainer (for tests to observe rotations).</summary>
    public SessionMaintainer? Maintainer { get; private set; }

    /// <summary>The cold-start report once ready.</summary>
    public JsonObject? ColdStart { get; private set; }

    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The app process once started (early, or after the secrets); stopped if the agent fails before it is ready.
    private AppProcess? _app;

    /// <summary>Runs until the app exits (its exit code) or <paramref name="stop"/> fires (SIGTERM: drain, then the app's code).</summary>
    public async Task<int> RunAsync(CancellationToken stop)
    {
        var time = options.Time;
        var log = new AgentLog(options.Log ?? Console.Error, time, options.Function);
        try
        {
            return await RunCoreAsync(log, stop).ConfigureAwait(false);
        }
        catch (AgentException e)
        {
            log.Error("exit", e.Message, new JsonObject { ["exit_code"] = e.ExitCode, ["app_started"] = false });
            _ready.TrySetException(e);
            return e.ExitCode;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            log.Info("exit", "stopped before the app started");
            _ready.TrySetCanceled(stop);
            return 143;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug, not a verdict: still one clear log line and a defined exit code rather than an abort. The app, if
            // it had started, was stopped on the way out (RunCoreAsync's handlers and ServeAsync's finally).
            log.Error("exit", $"internal error: {e.GetType().Name}: {e.Message}", new JsonObject { ["exit_code"] = AgentExitCodes.Internal });
            _ready.TrySetException(e);
            return AgentExitCodes.Internal;
        }
    }

    private async Task<int> RunCoreAsync(AgentLog log, CancellationToken stop)
    {
        var time = options.Time;
        var report = new ColdStartReport(time);
        if (options.DumpableFailure is { } failure)
        {
            // Not fatal (see the README's "What the app can read of the agent"): the TEE keeps the host out either way,
            // and a platform without the call (a library OS, a seccomp filter) would otherwise not run at all.
            log.Warn("still_dumpable", $"morph-init could not make itself non-dumpable ({failure}): the app, which runs as the same user, can read this process's environment and memory (the instance's TLS key, KMS token and report token) through /proc or ptrace");
        }

        // "launch": what a TEE does before any guest code runs (the simulated TEE measures the bundle here), so an
        // app started early below runs exactly what was measured.
        IDisposable? owned = null;
        var provider = report.Time("launch", () => EvidenceProviders.Create(options, launchConfig, out owned));
        if (options.WrapEvidence is { } wrap)
        {
            provider = wrap(provider);
        }

        using var _ = owned;
        if (provider.Name == "gramine" && options.AppSocket is null)
        {
            // Gramine has no network stack: loopback TCP is the host kernel's, which would read every decrypted request.
            throw new AgentException(AgentExitCodes.Usage, $"under Gramine the app cannot be served on TCP port {options.AppPort}: loopback TCP runs through the untrusted host kernel, which would see and could change every decrypted request; give --app-socket PATH (a UNIX domain socket, which Gramine encrypts between its processes)");
        }

        var secrets = new SecretDirectory(options.SecretsDir);
        try
        {
            if (options.AppStart == AppStart.Early)
            {
                // The app's start-up overlaps the pin and attestation; it gets no secret and no connection until
                // ReleaseSecrets, and it is stopped if either fails.
                secrets.Create();
                _app = report.Time("app_spawn", () => Track(AppProcess.StartEarly(options.App, secrets.Path, options.AppPort, options.AppSocket)));
            }

            // The pin is settled before the first byte goes to the KMS: a KMS the instance cannot pin must learn nothing.
            var pinRequest = new PinRequest
            {
                Unmeasured = options.KmsCaSha256,
                AllowUnmeasured = options.AllowUnmeasuredPin,
                Initdata = options.Initdata,
                Function = options.Function,
                Kms = options.Kms,
            };
            var (pinned, pinSource) = await report.TimeAsync("pin", () => PinResolver.ResolveAsync(
                provider, pinRequest, warning => log.Warn("unmeasured_pin", warning), stop)).ConfigureAwait(false);
            var pin = new KmsPin(pinned, time);
            using var kms = new KmsClient(options.Kms, pin, time, options.KmsAttempts, options.KmsRetryDelay);
            var attestor = new Attestor(kms, provider, options.Function, time);
            log.Info("start", $"attesting with {provider.Name} to {options.Kms}", new JsonObject
            {
                ["kms_ca_sha256"] = pin.Hex,
                ["kms_ca_pin_source"] = pinSource,
                ["app_start"] = options.AppStart == AppStart.Early ? "early" : "after-secrets",
            });

            return await ServeAsync(log, report, kms, attestor, secrets, stop).ConfigureAwait(false);
        }
        catch when (!_ready.Task.IsCompleted)
        {
            try
            {
                if (_app is { } unready)
                {
                    await unready.StopAsync(TimeSpan.FromSeconds(2), time).ConfigureAwait(false);
                }
            }
            catch (Exception e)
            {
                // The cold start's own failure is what the agent exits with (its code says why the instance never
                // served); a stop that failed as well is said beside it.
                log.Error("app_stop_failed", $"the app could not be stopped: {e.GetType().Name}: {e.Message}");
            }
            finally
            {
                // Provisioned secrets outlive a cold start that failed after them (the app never ready, the terminator
                // unable to listen) no more than they outlive a stopped app, whatever the stop did.
                WipeSecrets(secrets, log);
            }

            throw;
        }
        finally
        {
            _app?.Dispose();
        }
    }

    private async Task<int> ServeAsync(AgentLog log, ColdStartReport report, KmsClient kms, Attestor attestor, SecretDirectory secrets, CancellationToken stop)
    {
        var time = options.Time;
        var attestation = await attestor.AttestAsync(report, stop).ConfigureAwait(false);
        log.Info("attested", "attestation accepted", new JsonObject
        {
            ["tee"] = attestation.Tee,
            ["simulated"] = attestation.Simulated,
            ["revision"] = attestation.Login.Revision,
            ["certificate"] = attestation.Certificate.Issued ? "kms-issued" : "self-signed (the KMS issued none)",
        });
        if (options.IgnoredSecretPath(attestation.Login) is { } ignored)
        {
            log.Warn("secret_path_ignored", ignored);
        }

        // The terminator needs only the certificate: its start (the chain context, the listener) runs beside the
        // secrets and the app's release, and only "cold_start" waits for it. Serving routes after "cold_start", but the
        // port is open before: a client that connects early may complete its handshake, and is held (not connected to
        // the app) until the app's readiness check has confirmed that every listener on its port is the app's.
        var terminatorStart = Task.Run(() => StartTerminatorAsync(attestation.Certificate), CancellationToken.None);

        SecretBundle bundle;
        AppProcess running;
        try
        {
            bundle = await ProvisionSecretsAsync(report, kms, attestation, secrets, stop).ConfigureAwait(false);
            running = await StartAppAsync(log, report, bundle, secrets, stop).ConfigureAwait(false);
        }
        catch
        {
            await StopQuietlyAsync(terminatorStart).ConfigureAwait(false);
            throw;
        }

        // What is left of the terminator's start (usually nothing); timed, so the report has no gap.
        var terminator = await report.TimeAsync("terminator", () => terminatorStart).ConfigureAwait(false);
        await using var __ = terminator;
        Port = terminator.Port;

        // StartAppAsync returned: WaitReadyAsync found the app, and only the app, listening on its endpoint. Before this,
        // a process that took the app's port first would have been sent decrypted requests.
        terminator.ForwardToApp();

        ColdStart = report.ToJson(options.Function, attestation.Tee, attestation.Simulated, attestation.Certificate.Issued);
        log.Info("cold_start", "ready", ColdStart);

        Maintainer = new SessionMaintainer(options, kms, attestor, terminator, secrets, log) { App = running };
        Maintainer.Begin(attestation, bundle.Version);
        _ready.TrySetResult();
        if (options.ReportUrl is { } url)
        {
            // After readiness and off the request path: the log line above already carries the same report.
            _ = ColdStartReport.PostAsync(url, options.ReportToken, ColdStart, log, stop);
        }

        using var maintainerStop = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var maintaining = Maintainer.RunAsync(maintainerStop.Token);
        var stopped = Task.Delay(Timeout.Infinite, stop);
        var first = await Task.WhenAny(running.Exited, maintaining, stopped).ConfigureAwait(false);
        await maintainerStop.CancelAsync().ConfigureAwait(false);
        if (first == maintaining && maintaining.Exception?.InnerException is AgentException refused)
        {
            // Exit 7 from a running instance: the check of the app's listener, run again after a reload, refused it.
            log.Error(refused.ExitCode == AgentExitCodes.AppNotReady ? "app_listener_refused" : "deprovisioned", $"stopping the app: {refused.Message}");
        }

        // Stop accepting before the app gets SIGTERM: a client that comes now is refused at TCP, which it can safely
        // retry elsewhere, instead of completing a handshake and then being reset by an app on its way out. (A handshake
        // still in progress ends too; its client sent no request.) Connections already through to the app drain with
        // it, and whatever is still open once it has gone gets a second more, as before.
        var code = AgentExitCodes.Internal;
        Exception? stopFailed = null;
        try
        {
            await terminator.StopAsync(TimeSpan.Zero).ConfigureAwait(false);
            code = await running.StopAsync(options.DrainTimeout, time).ConfigureAwait(false);
            await terminator.StopAsync(ConnectionDrain).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // A kill that failed (a process of the tree the agent may not signal, one gone between listing and kill):
            // the wipe below must not depend on it. The terminator is disposed on the way out either way.
            stopFailed = e;
        }

        // The maintainer was cancelled, but may still be inside a secret update (Apply does not stop halfway): wipe
        // only once it has ended, or a file it writes could outlive the wipe.
        int? deprovisioned = null;
        try
        {
            await maintaining.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        catch (AgentException e)
        {
            deprovisioned = e.ExitCode;
        }
        finally
        {
            // Whatever ended the maintainer (a bug included), the secrets do not outlive the app.
            WipeSecrets(secrets, log);
        }

        if (stopFailed is not null)
        {
            // The app's exit code is not known, and the app may still run (without its secret files): not a clean
            // stop, so not 0. A deprovisioning is still the reason the instance ended, and its code says so.
            log.Error("app_stop_failed", $"the app could not be stopped: {stopFailed.GetType().Name}: {stopFailed.Message}", new JsonObject { ["exit_code"] = deprovisioned ?? AgentExitCodes.Internal });
        }

        if (deprovisioned is { } refusal)
        {
            return refusal;
        }

        if (stopFailed is not null)
        {
            return AgentExitCodes.Internal;
        }

        log.Info("exit", first == running.Exited ? "the app exited" : "stopped: app drained", new JsonObject { ["exit_code"] = code });
        return code;
    }

    private AppProcess Track(AppProcess app)
    {
        app.KillTreeForTests = options.KillAppForTests;
        return app;
    }

    // The secrets outlive no app: on a TEE's tmpfs they would vanish with the instance, on a disk they would not.
    private static void WipeSecrets(SecretDirectory secrets, AgentLog log)
    {
        try
        {
            secrets.Wipe();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.Warn("secrets_not_wiped", $"the secret files at {secrets.Path} could not be deleted: {e.Message}");
        }
    }

    private async Task<SecretBundle> ProvisionSecretsAsync(ColdStartReport report, KmsClient kms, Lifecycle.Attestation attestation, SecretDirectory secrets, CancellationToken stop) =>
        await report.TimeAsync("secrets", async () =>
        {
            KvSecret secret;
            try
            {
                secret = await kms.ReadKvAsync(options.SecretPathFor(attestation.Login), attestation.Login.Token, stop).ConfigureAwait(false);
            }
            catch (KmsCallException e)
            {
                throw new AgentException(AgentExitCodes.Secrets, $"cannot read the secret bundle at {options.SecretPathFor(attestation.Login)}: {e.Status} {e.Errors}", e);
            }
            catch (InvalidDataException e)
            {
                throw new AgentException(AgentExitCodes.Secrets, $"cannot use the secret bundle at {options.SecretPathFor(attestation.Login)}: {e.Message}", e);
            }

            try
            {
                var parsed = SecretBundle.Parse(secret.Version, secret.Data);
                secrets.Create();
                secrets.Apply(parsed.Files);
                return parsed;
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                throw new AgentException(AgentExitCodes.Secrets, e.Message, e);
            }
        }).ConfigureAwait(false);

    private async Task<AppProcess> StartAppAsync(AgentLog log, ColdStartReport report, SecretBundle bundle, SecretDirectory secrets, CancellationToken stop)
    {
        var time = options.Time;
        if (bundle.Argv.Count > 0)
        {
            // The count only: the values are what the warning is about.
            log.Warn("bundle_argv_visible", $"the secret bundle sets {bundle.Argv.Count} argv entries: they go on the app's command line, which every local user can read in /proc/PID/cmdline, so they must not be secrets (put those in files or env)", new JsonObject { ["argv_count"] = bundle.Argv.Count });
        }

        if (_app is { } early && (bundle.Env.Count > 0 || bundle.Argv.Count > 0))
        {
            // Env and argv can only be given at exec: the early app never had them, so it is replaced (slower, still right).
            log.Warn("app_restart", "the secret bundle sets env or argv, which an app started early cannot receive: restarting the app with them");
            _app = null;
            await early.StopAsync(TimeSpan.FromSeconds(2), time).ConfigureAwait(false);
            early.Dispose();
        }

        return await report.TimeAsync("app_ready", async () =>
        {
            var app = _app;
            if (app is null)
            {
                _app = app = Track(AppProcess.Start(options.App, bundle, secrets.Path, options.AppPort, options.AppSocket));
            }
            else
            {
                app.ReleaseSecrets();
            }

            await app.WaitReadyAsync(options.AppEndPoint, options.AppReadyTimeout, time, stop).ConfigureAwait(false);
            return app;
        }).ConfigureAwait(false);
    }

    private async Task<TlsTerminator> StartTerminatorAsync(Identity.ServingCertificate certificate)
    {
        var terminator = new TlsTerminator(options.ListenAddress, options.Port, options.AppEndPoint, certificate, idleTimeout: options.ConnectionIdleTimeout, time: options.Time);
        try
        {
            terminator.Start();
            return terminator;
        }
        catch (System.Net.Sockets.SocketException e)
        {
            await terminator.DisposeAsync().ConfigureAwait(false);
            throw new AgentException(AgentExitCodes.ListenFailed, $"the TLS terminator cannot listen on {options.ListenAddress}:{options.Port}: {e.Message}", e);
        }
    }

    // A terminator whose start failed, or that started for an instance that will not serve: nothing to report.
    private static async Task StopQuietlyAsync(Task<TlsTerminator> starting)
    {
        try
        {
            await using var terminator = await starting.ConfigureAwait(false);
        }
        catch (Exception e) when (e is AgentException or System.Security.Cryptography.CryptographicException or InvalidOperationException)
        {
            // The caller's own failure is the one to report.
        }
    }
}
