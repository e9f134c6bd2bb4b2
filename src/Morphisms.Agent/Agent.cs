using System.Text.Json.Nodes;
using Morphisms.Agent.App;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Lifecycle;
using Morphisms.Agent.Secrets;
using Morphisms.Agent.Telemetry;
using Morphisms.Agent.Tls;

namespace Morphisms.Agent;

/// <summary>
/// The guest agent: attest, fetch and write secrets, start the app behind the TLS terminator, keep everything fresh,
/// and drain on stop. The app is started only after attestation and secret provisioning succeeded.
/// </summary>
public sealed class Agent(AgentOptions options, byte[] launchConfig)
{
    /// <summary>The TLS port once serving (0 before).</summary>
    public int Port { get; private set; }

    /// <summary>Completes when the app answered and the instance is serving.</summary>
    public Task Ready => _ready.Task;

    /// <summary>The maintainer (for tests to observe rotations).</summary>
    public SessionMaintainer? Maintainer { get; private set; }

    /// <summary>The cold-start report once ready.</summary>
    public JsonObject? ColdStart { get; private set; }

    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

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
    }

    private async Task<int> RunCoreAsync(AgentLog log, CancellationToken stop)
    {
        var time = options.Time;
        var report = new ColdStartReport(time);
        var provider = EvidenceProviders.Create(options, launchConfig, out var owned);
        using var _ = owned;

        // The pin is settled before the first byte goes to the KMS: a KMS the instance cannot pin must learn nothing.
        var pinRequest = new PinRequest
        {
            Unmeasured = options.KmsCaSha256,
            AllowUnmeasured = options.AllowUnmeasuredPin,
            Initdata = options.Initdata,
            Function = options.Function,
            Kms = options.Kms,
        };
        var (pinned, pinSource) = await PinResolver.ResolveAsync(
            provider, pinRequest, warning => log.Warn("unmeasured_pin", warning), stop).ConfigureAwait(false);
        var pin = new KmsPin(pinned, time);
        using var kms = new KmsClient(options.Kms, pin, time, options.KmsAttempts, options.KmsRetryDelay);
        var attestor = new Attestor(kms, provider, options.Function, time);
        log.Info("start", $"attesting with {provider.Name} to {options.Kms}", new JsonObject { ["kms_ca_sha256"] = pin.Hex, ["kms_ca_pin_source"] = pinSource });

        var attestation = await attestor.AttestAsync(report, stop).ConfigureAwait(false);
        log.Info("attested", "attestation accepted", new JsonObject
        {
            ["tee"] = attestation.Tee,
            ["simulated"] = attestation.Simulated,
            ["revision"] = attestation.Login.Revision,
            ["certificate"] = attestation.Certificate.Issued ? "kms-issued" : "self-signed (the KMS issued none)",
        });

        var secrets = new SecretDirectory(options.SecretsDir);
        var bundle = await report.TimeAsync("secrets", async () =>
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

        await using var terminator = new TlsTerminator(options.ListenAddress, options.Port, options.AppPort, attestation.Certificate);
        terminator.Start();
        Port = terminator.Port;
        using var app = AppProcess.Start(options.App, bundle, secrets.Path, options.AppPort);
        try
        {
            await report.TimeAsync("app_ready", async () =>
            {
                await app.WaitReadyAsync(options.AppPort, options.AppReadyTimeout, time, stop).ConfigureAwait(false);
                return true;
            }).ConfigureAwait(false);
        }
        catch
        {
            await app.StopAsync(TimeSpan.FromSeconds(2), time).ConfigureAwait(false);
            throw;
        }

        ColdStart = report.ToJson(options.Function, attestation.Tee, attestation.Simulated, attestation.Certificate.Issued);
        log.Info("cold_start", "ready", ColdStart);
        if (options.ReportUrl is { } url)
        {
            await ColdStartReport.PostAsync(url, ColdStart, log, stop).ConfigureAwait(false);
        }

        Maintainer = new SessionMaintainer(options, kms, attestor, terminator, secrets, log) { App = app };
        Maintainer.Begin(attestation, bundle.Version);
        _ready.TrySetResult();

        using var maintainerStop = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var maintaining = Maintainer.RunAsync(maintainerStop.Token);
        var stopped = Task.Delay(Timeout.Infinite, stop);
        var first = await Task.WhenAny(app.Exited, maintaining, stopped).ConfigureAwait(false);
        await maintainerStop.CancelAsync().ConfigureAwait(false);
        if (first == maintaining && maintaining.Exception?.InnerException is AgentException refused)
        {
            log.Error("deprovisioned", $"stopping the app: {refused.Message}");
        }

        var code = await app.StopAsync(options.DrainTimeout, time).ConfigureAwait(false);
        await terminator.StopAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        try
        {
            await maintaining.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        catch (AgentException e)
        {
            return e.ExitCode;
        }

        log.Info("exit", first == app.Exited ? "the app exited" : "stopped: app drained", new JsonObject { ["exit_code"] = code });
        return code;
    }
}
