using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Morphisms.Attestation.Identity;
using Morphisms.Kms.Attest;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Metrics;
using Morphisms.Kms.Seal;
using Morphisms.Kms.SelfAttestation;
using Morphisms.Kms.Storage;
using Morphisms.Kms.Sys;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms;

/// <summary>
/// The KMS as a hostable server: Kestrel serving the Vault-compatible API under <c>/v1/</c>. The CLI runs it
/// with <see cref="RunAsync"/>; tests and <c>morph up</c> start it, read <see cref="BaseAddress"/> (and in dev mode
/// <see cref="DevCredentials"/>), and dispose it.
/// </summary>
public sealed class KmsServer : IAsyncDisposable
{
    private readonly KmsServerOptions _options;
    private readonly KmsCore _core;
    private readonly KmsMetrics _metrics = new();
    private readonly WebApplication _app;
    private readonly TextWriter _warnings;
    private readonly string? _tlsChainWarning;
    private bool _started;

    /// <summary>Validates the options, opens storage and builds (but does not start) the web application.</summary>
    /// <exception cref="ArgumentException">The listen address, storage, TLS or TTL options are invalid.</exception>
    public KmsServer(KmsServerOptions options)
        : this(options, null)
    {
    }

    /// <summary>Test seam: serve over a given storage instead of opening <see cref="KmsServerOptions.Storage"/>.</summary>
    internal KmsServer(KmsServerOptions options, IPhysicalStorage? storage)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _warnings = options.WarningWriter ?? Console.Error;
        var (address, port) = ParseListen(options.Listen);
        if (options.Tls.Mode == KmsTlsMode.Disabled && !IPAddress.IsLoopback(address))
        {
            throw new ArgumentException($"refusing to serve plain HTTP on non-loopback address {options.Listen}: configure TLS (certificate files or self-signed)", nameof(options));
        }

        if (options.MaxRequestBodyBytes is < 1024 or > 64L * 1024 * 1024)
        {
            throw new ArgumentException("the request body limit must be between 1 KiB and 64 MiB", nameof(options));
        }

        if (options.SealDrainTimeout < TimeSpan.Zero)
        {
            throw new ArgumentException("the seal drain timeout must not be negative", nameof(options));
        }

        if (KmsServerOptions.FunctionCertificateMaxTtlProblem(options.FunctionCertificateMaxTtl, options.MaxTokenTtl) is { } certificateTtlProblem)
        {
            throw new ArgumentException(certificateTtlProblem, nameof(options));
        }

        ValidateAttestation(options.Attestation);
        ValidateApiAddress(options);

        TlsCertificate = LoadCertificate(options.Tls, address, options.TimeProvider, out var chain);
        _tlsChainWarning = PkiCaInTlsChain(chain);
        var physical = storage ?? StorageSpec.Open(options.Storage);
        if (physical is SqliteStorage sqlite)
        {
            sqlite.CommitObserver = _metrics.ObserveCommit;
        }

        _core = new KmsCore(physical, options);
        _app = BuildApp(address, port, chain);
    }

    /// <summary>The base URL (<c>http(s)://HOST:PORT</c>) once started.</summary>
    public Uri? BaseAddress { get; private set; }

    /// <summary>The TLS certificate served (pin it in clients), or null for plain HTTP.</summary>
    public X509Certificate2? TlsCertificate { get; }

    /// <summary>The unseal key and root token in dev mode, once started.</summary>
    public KmsDevCredentials? DevCredentials { get; private set; }

    /// <summary>Whether the KMS is sealed (or not yet initialised).</summary>
    public bool Sealed => _core.Sealed;

    /// <summary>The seal state machine (tests drive it directly, in between the steps of a request).</summary>
    internal KmsCore Core => _core;

    /// <summary>The wipe of the last unsealed state, complete once its requests drained (tests wait for a seal's wipe).</summary>
    internal Task SealClosing => _core.Closing;

    /// <summary>Long-poll KV reads parked right now (tests wait for a read to park before writing).</summary>
    internal int KvWaiters
    {
        get
        {
            var state = _core.Acquire();
            try
            {
                return state?.Mounts.KvWatch.Waiters ?? 0;
            }
            finally
            {
                state?.Release();
            }
        }
    }

    /// <summary>Builds, starts and runs a server until <paramref name="cancellationToken"/> fires, then stops it.</summary>
    public static async Task RunAsync(KmsServerOptions options, CancellationToken cancellationToken)
    {
        await using var server = new KmsServer(options);
        await server.StartAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Normal shutdown.
        }
    }

    /// <summary>Loads the seal state, auto-unseals in dev mode, and starts listening.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        await _core.LoadAsync(cancellationToken).ConfigureAwait(false);
        if (!_options.Dev && _options.AutoUnseal is not null && _core.Initialized
            && await TryAutoUnsealAsync(cancellationToken).ConfigureAwait(false) is { } notUnsealed)
        {
            await _warnings.WriteLineAsync($"WARNING! the KMS is still sealed: {notUnsealed}").ConfigureAwait(false);
        }

        if (_options.Dev)
        {
            var keyFile = _options.DevKeyFile ?? (StorageSpec.SqlitePath(_options.Storage) is { } db ? db + ".dev-keys.json" : null);
            DevCredentials = await DevSeal.StartAsync(_core, keyFile, cancellationToken).ConfigureAwait(false);
            await _warnings.WriteLineAsync(
                "WARNING! dev mode is enabled: the KMS unsealed itself with a single unseal key "
                + (keyFile is null ? "kept in memory" : $"stored in plain text at {keyFile}")
                + ". Anyone who can read it controls every secret. Never use dev mode in production.").ConfigureAwait(false);
        }

        if (_options.Attestation is { TrustSimulatedTee: true, SimulatedTee: { } simulated })
        {
            await _warnings.WriteLineAsync(
                $"WARNING! the KMS accepts evidence from the simulated TEE (root sha256 {simulated.Fingerprint[..16]}…): functions that log in with it "
                + "prove nothing about TEE hardware, and their tokens say simulated=true. Never trust a simulated TEE in production.").ConfigureAwait(false);
        }

        if (_options.Attestation.Collateral is null)
        {
            await _warnings.WriteLineAsync(
                "WARNING! the KMS has no DCAP collateral of its own (morph kms server --dcap-collateral DIR or --dcap-pcs URL): SGX and TDX "
                + "logins are judged with the Intel collateral the instance sends, and any still within its validity is accepted — for about "
                + "30 days after a TCB recovery or a PCK revocation, an out-of-date or revoked platform can still log in.").ConfigureAwait(false);
        }

        if (_options.Attestation.SnpCrls is null)
        {
            await _warnings.WriteLineAsync(
                "WARNING! the KMS has no AMD CRLs (morph kms server --snp-crl FILE): SEV-SNP logins are not checked for revocation, "
                + "and a revoked VCEK, VLEK, ASK or ASVK is accepted until its certificate expires.").ConfigureAwait(false);
        }
        else if (_options.Attestation.VendorAnchors.Amd.Select(r => r.Product).Except(_options.Attestation.SnpCrls.Products).ToList() is { Count: > 0 } uncovered)
        {
            // A product line without a CRL is not checked at all; say which, rather than let one CRL look like coverage.
            await _warnings.WriteLineAsync(
                $"WARNING! no AMD CRL was given for {string.Join(", ", uncovered)} (morph kms server --snp-crl FILE): SEV-SNP logins on "
                + "those product lines are not checked for revocation.").ConfigureAwait(false);
        }

        if (_options.Tls.Mode == KmsTlsMode.Disabled)
        {
            await _warnings.WriteLineAsync($"WARNING! the KMS serves plain HTTP on {_options.Listen} (loopback only); use TLS for anything but local development.").ConfigureAwait(false);
        }

        if (_tlsChainWarning is not null)
        {
            await _warnings.WriteLineAsync(_tlsChainWarning).ConfigureAwait(false);
        }

        await _app.StartAsync(cancellationToken).ConfigureAwait(false);
        _started = true;
        var bound = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(bound.Replace("[::]", "[::1]", StringComparison.Ordinal));
        if (_core.Election is { } election)
        {
            if (_options.ApiAddress is null && !IPAddress.IsLoopback(ParseListen(_options.Listen).Address))
            {
                await _warnings.WriteLineAsync($"WARNING! HA without an API address: standbys will redirect clients to {BaseAddress}; set the address clients reach this node at (--api-addr).").ConfigureAwait(false);
            }

            // After listening: once active, the node serves at once; a lone node is active when this returns.
            await election.StartAsync(_options.ApiAddress ?? BaseAddress, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Start-up auto-unseal: null once unsealed, else why not.</summary>
    private async Task<string?> TryAutoUnsealAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _core.TryAutoUnsealAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BarrierException or KmsException)
        {
            // The root key unwrapped but the store does not open with it (keyring missing or damaged, an altered
            // restored snapshot). Stay up and sealed, as for any other auto-unseal failure: the operator needs
            // seal-status, the reason, and the server to unseal or restore into; a crash at start gives none of them.
            var reason = e is KmsException k ? string.Join("; ", k.Errors) : e.Message;
            return $"{_options.AutoUnseal!.Type} auto-unseal could not open the store: {reason}";
        }
    }

    /// <summary>Seals (wiping keys from memory), stops listening and closes storage.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_started)
        {
            await _app.StopAsync().ConfigureAwait(false);
        }

        await _app.DisposeAsync().ConfigureAwait(false);
        await _core.DisposeAsync().ConfigureAwait(false);
        TlsCertificate?.Dispose();
    }

    private WebApplication BuildApp(IPAddress address, int port, X509Certificate2Collection? chain)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "Morphisms.Kms", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        if (_options.ConsoleLogging)
        {
            builder.Logging.AddSimpleConsole();
        }

        if (TlsCertificate is not null)
        {
            builder.WebHost.UseKestrelHttpsConfiguration();
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;

            // Above the KMS's own limit: its check answers with a Vault-style 413 after draining a bounded excess.
            kestrel.Limits.MaxRequestBodySize = RequestBody.DrainLimit(_options.MaxRequestBodyBytes);
            kestrel.Listen(address, port, listen =>
            {
                if (TlsCertificate is null)
                {
                    listen.Protocols = HttpProtocols.Http1;
                    return;
                }

                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(https =>
                {
                    https.ServerCertificate = TlsCertificate;
                    https.ServerCertificateChain = chain;
                });
            });
        });

        var attestation = _options.Attestation;
        builder.Services.AddSingleton<Microsoft.Extensions.Hosting.IHostLifetime, EmbeddedHostLifetime>();
        builder.Services.AddSingleton(_core);
        builder.Services.AddSingleton(_metrics);
        builder.Services.AddSingleton(new KmsIdentity(TlsCertificate, EvidenceProviderOf(attestation)));
        builder.Services.AddSingleton(new ChallengeStore(_options.TimeProvider, attestation.NonceTtl, attestation.MaxSpentNonces));
        builder.Services.AddSingleton(new LoginAppraiser(attestation, _options.TimeProvider));
        builder.Services.AddSingleton<IFunctionCertificateIssuer, Pki.FunctionCertificateIssuer>();
        builder.Services.AddSingleton<Updates.IFunctionCertificateRevoker, Updates.IndexedCertificateRevoker>();
        builder.Services.AddSingleton<Updates.FunctionRetirement>();
        builder.Services.AddSingleton<SysBackend>();
        builder.Services.AddSingleton<TokenBackend>();
        builder.Services.AddSingleton<AttestBackend>();
        builder.Services.AddSingleton<FunctionRegistryBackend>();
        builder.Services.AddSingleton<VaultDispatcher>();

        var app = builder.Build();
        app.UseExceptionHandler(error => error.Run(context =>
            VaultEnvelope.WriteErrorAsync(context, StatusCodes.Status500InternalServerError, ["internal error"])));
        var dispatcher = app.Services.GetRequiredService<VaultDispatcher>();
        app.Map("/v1/{**path}", dispatcher.HandleAsync);
        app.MapFallback(context => VaultEnvelope.WriteErrorAsync(context, StatusCodes.Status404NotFound, ["unsupported path: the Vault API is served under /v1/"]));
        return app;
    }

    private static void ValidateApiAddress(KmsServerOptions options)
    {
        if (options.ApiAddress is not { } api)
        {
            return;
        }

        if (!StorageSpec.IsPostgres(options.Storage))
        {
            throw new ArgumentException("an API address is only used for HA, with PostgreSQL storage", nameof(options));
        }

        if (!HighAvailability.LeaderRecord.IsApiAddress(api))
        {
            throw new ArgumentException($"invalid API address '{api}': use http(s)://HOST:PORT", nameof(options));
        }

        if (api.Scheme == Uri.UriSchemeHttp && options.Tls.Mode != KmsTlsMode.Disabled)
        {
            // Standbys redirect clients, token and request body included, to this address: a TLS node must not be
            // reached in clear, and an unpinned client follows a redirect to plain http.
            throw new ArgumentException($"invalid API address '{api}': this node serves TLS, so its API address must be https://HOST:PORT", nameof(options));
        }
    }

    private static void ValidateAttestation(KmsAttestationOptions attestation)
    {
        if (attestation.TrustSimulatedTee && attestation.SimulatedTee is null)
        {
            throw new ArgumentException("trusting the simulated TEE needs the simulated TEE itself (its roots)", nameof(attestation));
        }

        if (attestation.NonceTtl < TimeSpan.FromSeconds(1) || attestation.NonceTtl > TimeSpan.FromHours(1))
        {
            throw new ArgumentException("the challenge nonce TTL must be between 1 second and 1 hour", nameof(attestation));
        }

        if (attestation.MaxSpentNonces is < 1 or > 1_000_000)
        {
            throw new ArgumentException("the spent challenge nonce limit must be between 1 and 1000000", nameof(attestation));
        }

        if (attestation.MinimumSgxTcbEvaluationDataNumber < 0 || attestation.MinimumTdxTcbEvaluationDataNumber < 0)
        {
            throw new ArgumentException("a minimum tcbEvaluationDataNumber must not be negative", nameof(attestation));
        }

        if (attestation.SimulatedMeasurement is { Length: not 48 })
        {
            throw new ArgumentException("the simulated KMS measurement must be 48 bytes", nameof(attestation));
        }
    }

    private static IKmsEvidenceProvider? EvidenceProviderOf(KmsAttestationOptions attestation) =>
        attestation.EvidenceProvider
        ?? (attestation.SimulatedTee is { } tee ? new SimulatedKmsEvidenceProvider(tee, attestation.SimulatedMeasurement ?? KmsMeasurement.Simulated) : null);

    private static (IPAddress Address, int Port) ParseListen(string listen)
    {
        var colon = listen.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(listen.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            throw new ArgumentException($"invalid listen address '{listen}': use HOST:PORT", nameof(listen));
        }

        var host = listen[..colon].Trim('[', ']');
        if (host == "localhost")
        {
            return (IPAddress.Loopback, port);
        }

        return IPAddress.TryParse(host, out var address)
            ? (address, port)
            : throw new ArgumentException($"invalid listen host '{host}': use an IP address or localhost", nameof(listen));
    }

    /// <summary>
    /// The warning for a TLS chain (from the certificate file) that holds a KMS PKI root or an intermediate of it, or
    /// null: the operator issued the KMS's TLS certificate from <c>pki/</c>, whose CA also signs function and role
    /// certificates, so agents and serving hosts refuse a pin at it. Seen by the marker, which works while sealed; a
    /// chain issued from a root made before the marker existed goes unnoticed.
    /// </summary>
    private static string? PkiCaInTlsChain(X509Certificate2Collection? chain)
    {
        var marked = chain?.FirstOrDefault(KmsPkiCaMarker.IsOn);
        return marked is null ? null :
            $"WARNING! the KMS's TLS certificate chain contains '{marked.Subject}', a KMS PKI root CA or an intermediate of it: "
            + "that CA also signs function and pki/ role certificates, so it cannot identify the KMS, and agents and serving hosts "
            + "refuse a pin at it. Issue the KMS's TLS certificate from a CA of its own (or use the self-signed one) and pin that CA.";
    }

    private static X509Certificate2? LoadCertificate(KmsTlsOptions tls, IPAddress address, TimeProvider time, out X509Certificate2Collection? chain)
    {
        chain = null;
        switch (tls.Mode)
        {
            case KmsTlsMode.Disabled:
                return null;
            case KmsTlsMode.Files:
                if (string.IsNullOrEmpty(tls.CertificateFile) || string.IsNullOrEmpty(tls.KeyFile))
                {
                    throw new ArgumentException("TLS from files needs both a certificate file and a key file", nameof(tls));
                }

                var leaf = X509Certificate2.CreateFromPemFile(tls.CertificateFile, tls.KeyFile);
                var all = new X509Certificate2Collection();
                all.ImportFromPemFile(tls.CertificateFile);
                chain = [.. all.Where(c => c.Thumbprint != leaf.Thumbprint)];
                return leaf;
            default:
                using (var key = ECDsa.Create(ECCurve.NamedCurves.nistP256))
                {
                    var request = new CertificateRequest("CN=morphisms-kms", key, HashAlgorithmName.SHA256);
                    var san = new SubjectAlternativeNameBuilder();
                    san.AddDnsName("localhost");
                    san.AddIpAddress(IPAddress.Loopback);
                    san.AddIpAddress(IPAddress.IPv6Loopback);
                    if (!IPAddress.Any.Equals(address) && !IPAddress.IPv6Any.Equals(address) && !IPAddress.IsLoopback(address))
                    {
                        san.AddIpAddress(address);
                    }

                    request.CertificateExtensions.Add(san.Build());
                    request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
                    request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
                    var now = time.GetUtcNow();
                    return request.CreateSelfSigned(now.AddHours(-1), now.AddYears(1));
                }
        }
    }
}
