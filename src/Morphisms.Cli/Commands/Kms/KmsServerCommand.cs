using System.CommandLine;
using Morphisms.Attestation;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Cli.Paths;
using Morphisms.Kms;
using Morphisms.Kms.Attest;
using Morphisms.Kms.AutoUnseal;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms server</c>: runs a KMS until interrupted. Production-style by default (Shamir seal, uninitialised
/// until <c>morph kms init</c>, simulated evidence refused at login); <c>--dev</c> initialises and unseals itself
/// and trusts the installation's simulated TEE, loudly. Either way the KMS attests itself with the installation's
/// simulated TEE on a machine without TEE hardware.
/// </summary>
public static class KmsServerCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var listen = new Option<string>("--listen") { Description = "HOST:PORT to listen on (port 0 picks one).", DefaultValueFactory = _ => "127.0.0.1:8200" };
        var storage = new Option<string?>("--storage")
        {
            Description = "sqlite:PATH, inmem (default with --dev; required otherwise), or PostgreSQL for several nodes in active/standby HA: "
                + $"postgres (connection string in ${Morphisms.Kms.Storage.PostgresStorage.ConnectionStringVariable}) or postgres:file=PATH (connection string in a file).",
        };
        var apiAddr = new Option<string?>("--api-addr") { Description = "With PostgreSQL storage: the URL clients reach this node at (https://HOST:PORT); standbys redirect to the active node's. Default: the listen address." };
        var tlsCert = new Option<FileInfo?>("--tls-cert") { Description = "PEM certificate (chain) to serve." };
        var tlsKey = new Option<FileInfo?>("--tls-key") { Description = "PEM private key of --tls-cert." };
        var tlsSelf = new Option<bool>("--tls-self") { Description = "Serve a fresh self-signed certificate (pin it through sys/attestation)." };
        var dev = new Option<bool>("--dev") { Description = "INSECURE: one unseal key kept beside the storage, auto-unseal, simulated TEE trusted." };
        var audit = new Option<FileInfo?>("--audit") { Description = "Append-only, hash-chained audit log file." };
        var trustSimulated = new Option<DirectoryInfo?>("--trust-simulated-tee") { Description = "Accept login evidence from the simulated TEE in DIR (insecure; --dev trusts the installation's)." };
        var seal = new Option<string>("--seal") { Description = "shamir (default), or pkcs11: auto-unseal with an AES key in an HSM (the shares are reported as recovery keys and still unseal without the HSM: guard them as unseal keys).", DefaultValueFactory = _ => "shamir" };
        var pkcs11Lib = new Option<string?>("--pkcs11-lib") { Description = "With --seal pkcs11: the PKCS#11 module (.so)." };
        var pkcs11Token = new Option<string?>("--pkcs11-token") { Description = "With --seal pkcs11: the token label." };
        var pkcs11Slot = new Option<ulong?>("--pkcs11-slot") { Description = "With --seal pkcs11: the slot id (instead of --pkcs11-token)." };
        var pkcs11Key = new Option<string>("--pkcs11-key") { Description = "With --seal pkcs11: the AES key's label (created on first init).", DefaultValueFactory = _ => "morphisms-kms-root" };
        var pkcs11PinFile = new Option<string?>("--pkcs11-pin-file") { Description = "With --seal pkcs11: a file holding the user PIN." };
        var pkcs11PinEnv = new Option<string?>("--pkcs11-pin-env") { Description = "With --seal pkcs11: an environment variable holding the user PIN (never pass the PIN itself)." };
        var dcapCollateral = new Option<string?>("--dcap-collateral")
        {
            Description = "SGX/TDX: the KMS's own Intel collateral, a directory or bundle file (docs/collateral.md), read at start. "
                + "A login's collateral is then used only where it is at least as new.",
        };
        var dcapPcs = new Option<string?>("--dcap-pcs") { Description = "SGX/TDX: fetch the KMS's own collateral from Intel PCS or a PCCS at this https URL (plain http on loopback only; cached), instead of --dcap-collateral." };
        var dcapMinimum = new Option<string[]>("--dcap-min-tcb-evaluation-data-number")
        {
            Description = "TEE=N (sgx or tdx, repeatable): refuse logins whose collateral's tcbEvaluationDataNumber (Intel's TCB recovery number) is below N.",
            AllowMultipleArgumentsPerToken = true,
        };
        var snpCrl = new Option<string[]>("--snp-crl")
        {
            Description = "SEV-SNP: an AMD CRL file (KDS /vcek|vlek/v1/PRODUCT/crl, DER or PEM) or a directory of them (repeatable), read at start. "
                + "Logins from the products they cover are refused when revoked or when a CRL is past its next update.",
            AllowMultipleArgumentsPerToken = true,
        };
        var functionCertTtl = new Option<string?>("--function-cert-ttl")
        {
            Description = "The longest a function certificate lives, e.g. 15m (the default) or 1h, at least 1m; a function's token max TTL shortens it. "
                + "Clients that check the KMS's CRL (the default) refuse a retired revision's instance within 30 s; to one that does not, "
                + "this is how long it may still be accepted.",
        };
        var command = new Command("server", "Run a KMS (Vault-compatible API under /v1/) until interrupted.")
        {
            listen, storage, apiAddr, tlsCert, tlsKey, tlsSelf, dev, audit, trustSimulated, seal, pkcs11Lib, pkcs11Token, pkcs11Slot, pkcs11Key, pkcs11PinFile, pkcs11PinEnv,
            dcapCollateral, dcapPcs, dcapMinimum, snpCrl, functionCertTtl,
        };
        command.SetAction(async (parse, ct) =>
        {
            KmsServerOptions options;
            SimulatedTeeAuthority? tee = null;
            HttpClient? pcsHttp = null;
            try
            {
                // Every flag is checked before the simulated TEE is loaded (or created): a usage error changes nothing.
                var isDev = parse.GetValue(dev);
                var trustDir = parse.GetValue(trustSimulated);
                var listenAddress = Listen(parse.GetValue(listen)!);
                var storageSpec = Storage(parse.GetValue(storage), isDev);
                var tls = Tls(parse.GetValue(tlsCert), parse.GetValue(tlsKey), parse.GetValue(tlsSelf));
                var apiAddress = ApiAddress(parse.GetValue(apiAddr), storageSpec, tls);
                var autoUnseal = parse.GetValue(seal) switch
                {
                    "shamir" => null,
                    "pkcs11" => Pkcs11(new Pkcs11SealOptions
                    {
                        LibraryPath = parse.GetValue(pkcs11Lib) ?? throw KmsCliException.Usage("--seal pkcs11 needs --pkcs11-lib"),
                        TokenLabel = parse.GetValue(pkcs11Token),
                        SlotId = parse.GetValue(pkcs11Slot),
                        KeyLabel = parse.GetValue(pkcs11Key)!,
                        PinFile = parse.GetValue(pkcs11PinFile),
                        PinEnvironmentVariable = parse.GetValue(pkcs11PinEnv),
                    }),
                    var other => throw KmsCliException.Usage($"--seal: expected shamir or pkcs11, got '{other}'"),
                };
                var certificateTtl = FunctionCertificateTtl(parse.GetValue(functionCertTtl));
                var minimums = EvaluationMinimums(parse.GetValue(dcapMinimum) ?? []);
                var snpCrls = SnpCrls(parse.GetValue(snpCrl) ?? []);
                var collateral = Collateral(parse.GetValue(dcapCollateral), parse.GetValue(dcapPcs), out pcsHttp);
                if (trustDir is not null && !SimulatedTeeAuthority.Exists(trustDir.FullName))
                {
                    throw KmsCliException.Usage($"--trust-simulated-tee: no simulated TEE at {trustDir.FullName}");
                }

                // A trusted directory is only ever loaded: trusting must never create a new root.
                tee = trustDir is not null
                    ? SimulatedTeeAuthority.Load(trustDir.FullName)
                    : SimulatedTeeAuthority.LoadOrCreate(MorphPaths.FromEnvironment().SimulatedTeeDirectory, TimeProvider.System);
                options = new KmsServerOptions
                {
                    Listen = listenAddress,
                    Storage = storageSpec,
                    ApiAddress = apiAddress,
                    Tls = tls,
                    Dev = isDev,
                    AuditLogPath = parse.GetValue(audit)?.FullName,
                    Attestation = new KmsAttestationOptions
                    {
                        SimulatedTee = tee,
                        TrustSimulatedTee = isDev || trustDir is not null,
                        Collateral = collateral,
                        SnpCrls = snpCrls,
                        MinimumSgxTcbEvaluationDataNumber = minimums.Sgx,
                        MinimumTdxTcbEvaluationDataNumber = minimums.Tdx,
                    },
                    WarningWriter = stderr,
                    AutoUnseal = autoUnseal,
                    FunctionCertificateMaxTtl = certificateTtl,
                };
            }
            catch (Exception e) when (e is KmsCliException or IOException or UnauthorizedAccessException or InvalidDataException or System.Text.Json.JsonException)
            {
                tee?.Dispose();
                pcsHttp?.Dispose();
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return e is KmsCliException k ? k.ExitCode : ExitCodes.UsageOrInput;
            }

            using (tee)
            using (pcsHttp)
            {
                return await RunAsync(options, stdout, stderr, ct);
            }
        });
        return command;
    }

    private static async Task<int> RunAsync(KmsServerOptions options, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        KmsServer server;
        try
        {
            server = new KmsServer(options);
        }
        catch (Exception e) when (e is ArgumentException or IOException or System.Security.Cryptography.CryptographicException or System.Data.Common.DbException)
        {
            await stderr.WriteLineAsync($"morph: {e.Message}");
            return ExitCodes.UsageOrInput;
        }

        await using (server)
        {
            try
            {
                await server.StartAsync(ct);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or System.Data.Common.DbException)
            {
                await stderr.WriteLineAsync($"morph: the KMS could not start: {e.Message}");
                return ExitCodes.Rejected;
            }

            await stdout.WriteLineAsync($"listening {server.BaseAddress}");
            DirectoryInfo? tokenDirectory = null;
            try
            {
                if (server.DevCredentials is { } credentials)
                {
                    if (credentials.KeyFile is { } file)
                    {
                        await stdout.WriteLineAsync($"dev mode: the unseal key and root token are in {file}");
                    }
                    else
                    {
                        // Only the path is printed: stdout ends up in journald, CI logs and scrollback, where a root token
                        // would outlive the KMS. The file goes with the KMS, whose token it is (in memory only).
                        (tokenDirectory, var tokenFile) = WriteRootToken(credentials.RootToken);
                        await stdout.WriteLineAsync($"dev mode: the root token is in {tokenFile} (mode 0600, removed when the KMS stops): pass --token-file {tokenFile}");
                    }
                }

                await stdout.FlushAsync(CancellationToken.None);
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    // Interrupted: dispose seals the KMS (wiping keys) and stops listening.
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: dev mode: the root token could not be written to a file: {e.Message}");
                return ExitCodes.Rejected;
            }
            finally
            {
                try
                {
                    tokenDirectory?.Delete(recursive: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    await stderr.WriteLineAsync($"morph: dev mode: could not remove {tokenDirectory!.FullName}: {e.Message}");
                }
            }
        }

        return ExitCodes.Ok;
    }

    /// <summary>
    /// Writes a dev KMS's root token to <c>root-token</c> (mode 0600, <see cref="PrivateFile"/>) in a new directory only
    /// this user may enter, under the temporary directory, and returns both.
    /// </summary>
    private static (DirectoryInfo Directory, string File) WriteRootToken(string rootToken)
    {
        var directory = Directory.CreateTempSubdirectory("morph-kms-dev-");
        try
        {
            var file = Path.Combine(directory.FullName, "root-token");
            try
            {
                PrivateFile.Write(file, rootToken + "\n");
            }
            catch (FileNotDurableException)
            {
                // Written; whether its name would survive a power cut does not matter for a token that dies with this process.
            }

            return (directory, file);
        }
        catch
        {
            directory.Delete(recursive: true);
            throw;
        }
    }

    /// <summary>
    /// The operator's AMD CRLs, each checked at start to be signed by a vendor AMD root (never the simulated one, which
    /// is loaded later): without them SNP logins are not checked for revocation (the server warns at start).
    /// </summary>
    private static SnpRevocationLists? SnpCrls(string[] paths)
    {
        if (paths.Length == 0)
        {
            return null;
        }

        var files = new List<(string, byte[])>();
        foreach (var path in paths)
        {
            var names = Directory.Exists(path) ? Directory.GetFiles(path).Order(StringComparer.Ordinal).ToArray()
                : File.Exists(path) ? [path]
                : throw KmsCliException.Usage($"--snp-crl: no such file or directory: {path}");
            files.AddRange(names.Select(name => (name, File.ReadAllBytes(name))));
        }

        if (files.Count == 0)
        {
            throw KmsCliException.Usage($"--snp-crl: no CRL files in {string.Join(", ", paths)}");
        }

        try
        {
            return SnpRevocationLists.Load(files, TrustAnchors.Vendor);
        }
        catch (ArgumentException e)
        {
            throw KmsCliException.Usage($"--snp-crl: {e.Message}");
        }
    }

    /// <summary>
    /// The KMS's own DCAP collateral: without it, a login's collateral is taken as sent, and an instance can choose
    /// collateral from before a TCB recovery or a revocation (the server warns at start).
    /// </summary>
    private static ICollateralSource? Collateral(string? path, string? pcs, out HttpClient? http)
    {
        http = null;
        if (path is not null && pcs is not null)
        {
            throw KmsCliException.Usage("--dcap-collateral and --dcap-pcs are alternatives: give one");
        }

        if (path is not null)
        {
            OfflineCollateralStore store;
            try
            {
                store = OfflineCollateralStore.Open(path);
            }
            catch (EvidenceFormatException e)
            {
                throw KmsCliException.Usage($"--dcap-collateral: {e.Message}");
            }
            catch (FileNotFoundException)
            {
                throw KmsCliException.Usage($"--dcap-collateral: no such file or directory: {path}");
            }

            return store.IsEmpty ? throw KmsCliException.Usage($"--dcap-collateral: no collateral files in {path} (docs/collateral.md lists the layouts)") : store;
        }

        if (pcs is null)
        {
            return null;
        }

        if (!Uri.TryCreate(pcs, UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https")
            || address.Query.Length > 0 || address.Fragment.Length > 0 || address.UserInfo.Length > 0)
        {
            throw KmsCliException.Usage($"--dcap-pcs: expected an http(s) URL such as https://api.trustedservices.intel.com/, got '{pcs}'");
        }

        // Intel signs the collateral, but not which version is current nor that an item exists: whoever answers in
        // place of the PCCS could replay an older document or a 404 and let a revoked or out-of-date platform in.
        if (!KmsHttp.MayCarrySecrets(address))
        {
            throw KmsCliException.Usage($"--dcap-pcs: {pcs} is plain http to another machine: whoever is on the path could answer older Intel collateral or a 404 for the PCK CRL, letting a revoked or out-of-date platform log in; use https (plain http is accepted on loopback only)");
        }

        // PCS paths are resolved against the base, which keeps its last segment only with a trailing slash (a PCCS under /pccs).
        var baseAddress = address.AbsolutePath.EndsWith('/') ? address : new Uri(address.AbsoluteUri + "/");
        http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        return new CachingCollateralSource(new IntelPcsCollateralSource(http, new IntelPcsOptions { BaseAddress = baseAddress }), TimeProvider.System);
    }

    private static TimeSpan FunctionCertificateTtl(string? text)
    {
        if (text is null)
        {
            return KmsServerOptions.DefaultFunctionCertificateMaxTtl;
        }

        if (!Morphisms.Serving.Spec.FunctionSpecLoader.TryParseDuration(text, out var ttl))
        {
            throw KmsCliException.Usage($"--function-cert-ttl: expected a duration such as 15m, 900s or 1h, got '{text}'");
        }

        // Checked as the server will check it (the CLI keeps the default max token TTL), before anything is loaded or created.
        return KmsServerOptions.FunctionCertificateMaxTtlProblem(ttl, KmsServerOptions.DefaultMaxTokenTtl) is { } problem
            ? throw KmsCliException.Usage($"--function-cert-ttl: {problem}")
            : ttl;
    }

    private static (int? Sgx, int? Tdx) EvaluationMinimums(string[] values)
    {
        var minimums = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            var equals = value.IndexOf('=', StringComparison.Ordinal);
            var tee = equals > 0 ? value[..equals].Trim().ToLowerInvariant() : "";
            if (tee is not ("sgx" or "tdx")
                || !int.TryParse(value.AsSpan(equals + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var number))
            {
                throw KmsCliException.Usage($"--dcap-min-tcb-evaluation-data-number: expected sgx=N or tdx=N, got '{value}'");
            }

            if (!minimums.TryAdd(tee, number))
            {
                throw KmsCliException.Usage($"--dcap-min-tcb-evaluation-data-number: {tee} is given twice");
            }
        }

        return (minimums.TryGetValue("sgx", out var sgx) ? sgx : null, minimums.TryGetValue("tdx", out var tdx) ? tdx : null);
    }

    private static Pkcs11RootKeyWrapper Pkcs11(Pkcs11SealOptions options) =>
        options.Problem() is { } problem ? throw KmsCliException.Usage("--seal pkcs11: " + problem) : new Pkcs11RootKeyWrapper(options);

    private static string Listen(string listen)
    {
        var colon = listen.LastIndexOf(':');
        var host = colon > 0 ? listen[..colon].Trim('[', ']') : "";
        return colon > 0
            && int.TryParse(listen.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port <= 65535
            && (host == "localhost" || System.Net.IPAddress.TryParse(host, out _))
                ? listen
                : throw KmsCliException.Usage($"--listen: expected HOST:PORT with an IP address or localhost, got '{listen}'");
    }

    private static string Storage(string? storage, bool dev) => storage switch
    {
        null when dev => "inmem",
        null => throw KmsCliException.Usage("--storage is required (sqlite:PATH, postgres or postgres:file=PATH), except with --dev"),
        "inmem" => storage,
        _ when storage.StartsWith("sqlite:", StringComparison.Ordinal) && storage.Length > "sqlite:".Length => storage,
        _ when Morphisms.Kms.Storage.StorageSpec.IsPostgres(storage) => storage,

        // Never echo what was given: it may be a connection string with a password, which does not belong on a command line.
        _ when storage.StartsWith("postgres", StringComparison.OrdinalIgnoreCase) => throw KmsCliException.Usage(
            $"--storage: expected postgres (connection string in ${Morphisms.Kms.Storage.PostgresStorage.ConnectionStringVariable}) or postgres:file=PATH; "
            + "a connection string never goes on the command line"),
        _ => throw KmsCliException.Usage($"--storage: expected sqlite:PATH, inmem, postgres or postgres:file=PATH, got '{storage}'"),
    };

    private static Uri? ApiAddress(string? apiAddr, string storage, KmsTlsOptions tls)
    {
        if (apiAddr is null)
        {
            return null;
        }

        if (!Morphisms.Kms.Storage.StorageSpec.IsPostgres(storage))
        {
            throw KmsCliException.Usage("--api-addr is for HA, with --storage postgres or postgres:file=PATH");
        }

        if (!(Uri.TryCreate(apiAddr, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.AbsolutePath == "/"
            && uri.Query.Length == 0 && uri.Fragment.Length == 0 && uri.UserInfo.Length == 0))
        {
            throw KmsCliException.Usage($"--api-addr: expected http(s)://HOST:PORT, got '{apiAddr}'");
        }

        // Standbys redirect clients, token and body included, to this address; a node that serves TLS is not reached in clear.
        return uri.Scheme == Uri.UriSchemeHttp && tls.Mode != KmsTlsMode.Disabled
            ? throw KmsCliException.Usage($"--api-addr: this node serves TLS (--tls-cert or --tls-self), so use https://HOST:PORT, not '{apiAddr}'")
            : uri;
    }

    private static KmsTlsOptions Tls(FileInfo? certificate, FileInfo? key, bool selfSigned)
    {
        if (selfSigned && (certificate is not null || key is not null))
        {
            throw KmsCliException.Usage("--tls-self cannot be combined with --tls-cert/--tls-key");
        }

        if ((certificate is null) != (key is null))
        {
            throw KmsCliException.Usage("--tls-cert and --tls-key go together");
        }

        foreach (var file in new[] { certificate, key })
        {
            if (file is { Exists: false })
            {
                // FileInfo.Exists is false for a directory too, which is not "not found".
                throw KmsCliException.Usage($"{(file == certificate ? "--tls-cert" : "--tls-key")}: {(Directory.Exists(file.FullName) ? BoundedFile.NotAFile(file.FullName) : $"file not found: {file.FullName}")}");
            }
        }

        return selfSigned ? KmsTlsOptions.SelfSigned
            : certificate is not null ? KmsTlsOptions.FromFiles(certificate.FullName, key!.FullName)
            : KmsTlsOptions.Disabled;
    }
}
