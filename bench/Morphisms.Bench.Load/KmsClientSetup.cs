using System.Globalization;
using System.Text.Json.Nodes;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Lifecycle;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;

namespace Morphisms.Bench.Load;

/// <summary>The KMS operations the KMS scenario measures, by name, and what each one is.</summary>
internal static class KmsOperations
{
    /// <summary>The operations measured when none are named.</summary>
    public const string All = "login,login-fresh,read,sign";

    public static bool IsLogin(string name) => name.StartsWith("login", StringComparison.Ordinal);

    public static string Title(string name, KmsClientInput input) => name switch
    {
        "login" => "attest-login (challenge + evidence + login + certificate), pooled connections",
        "login-fresh" => "attest-login, a new TCP + TLS connection per login",
        "read" => $"secret read (KV v2 GET {input.SecretPath}, function token)",
        "sign" => $"CSR signing (pki/sign/{input.Role}, P-256 CSR)",
        _ => throw new ArgumentException($"unknown KMS operation '{name}': choose from {All}"),
    };
}

/// <summary>
/// What a <c>kms-client</c> needs to reach the KMS and act as the bench function. It goes to the child as JSON on its
/// stdin, never on its command line (visible in <c>ps</c> and logs), because it carries the root and function tokens.
/// </summary>
/// <param name="Kms">The KMS base address.</param>
/// <param name="PinHex">SHA-256 of the KMS TLS certificate's DER, hex.</param>
/// <param name="TeeDirectory">The installation's simulated TEE (its authority signs the SNP evidence).</param>
/// <param name="MeasurementHex">The deployed revision's measurement, which the evidence reports.</param>
/// <param name="Function">The function that logs in.</param>
/// <param name="SecretPath">The KV v2 path the reads get.</param>
/// <param name="Role">The PKI role the CSRs are signed under.</param>
/// <param name="RoleDomain">The role's allowed domain (the CSRs' names are under it).</param>
/// <param name="RootToken">For <c>sign</c>.</param>
/// <param name="FunctionToken">For <c>read</c>: from a login, renewed to outlive the child's run.</param>
internal sealed record KmsClientInput(
    Uri Kms, string PinHex, string TeeDirectory, string MeasurementHex, string Function, string SecretPath, string Role, string RoleDomain, string RootToken, string? FunctionToken)
{
    public JsonObject ToJson() => new()
    {
        ["kms"] = Kms.ToString(),
        ["pin"] = PinHex,
        ["tee_directory"] = TeeDirectory,
        ["measurement"] = MeasurementHex,
        ["function"] = Function,
        ["secret_path"] = SecretPath,
        ["role"] = Role,
        ["role_domain"] = RoleDomain,
        ["root_token"] = RootToken,
        ["function_token"] = FunctionToken,
    };

    public static KmsClientInput Parse(JsonObject json)
    {
        string Required(string key) => json[key]?.GetValue<string>() ?? throw new InvalidDataException($"kms-client input without {key}");
        return new KmsClientInput(
            new Uri(Required("kms")), Required("pin"), Required("tee_directory"), Required("measurement"), Required("function"),
            Required("secret_path"), Required("role"), Required("role_domain"), Required("root_token"), json["function_token"]?.GetValue<string>());
    }
}

/// <summary>
/// One <c>kms-client</c> measurement, the non-secret part (its command-line arguments): the operation, a closed loop
/// with <paramref name="Concurrency"/> workers or, with a <paramref name="Rate"/>, an open loop at that rate, for
/// <paramref name="Seconds"/> after 20 calls and a <paramref name="Warmup"/>-second closed loop of warm-up.
/// </summary>
internal sealed record KmsMeasurement(string Operation, int Seconds, int Warmup, int Concurrency, int? Rate, string? Cpus = null)
{
    public string Label => Rate is { } rate ? $"{Operation}: open, {rate}/s" : $"{Operation}: closed, {Concurrency} workers";

    public IEnumerable<string> Arguments()
    {
        string[] common =
        [
            "--op", Operation, "--seconds", Seconds.ToString(CultureInfo.InvariantCulture),
            "--warmup", Warmup.ToString(CultureInfo.InvariantCulture), "--concurrency", Concurrency.ToString(CultureInfo.InvariantCulture),
        ];
        string[] cpus = Cpus is null ? [] : ["--cpus", Cpus];
        return Rate is { } rate ? [.. common, .. cpus, "--rate", rate.ToString(CultureInfo.InvariantCulture)] : [.. common, .. cpus];
    }

    public static KmsMeasurement Parse(Options options) => new(
        options.Get("op") ?? throw new ArgumentException("--op OPERATION is required"),
        options.Int("seconds", 5),
        options.Int("warmup", 10),
        options.Int("concurrency", 16),
        options.Get("rate") is { } rate ? int.Parse(rate, CultureInfo.InvariantCulture) : null,
        options.Get("cpus"));
}

/// <summary>
/// The agent's side of the KMS, as morph-init has it: a client pinned to the KMS certificate (one pooled, or a new one
/// per call) and attest-login with simulated SNP evidence of the deployed measurement. The parent uses it for its
/// setup calls, the <c>kms-client</c> for the measured ones.
/// </summary>
internal sealed class KmsAgentSide : IDisposable
{
    private readonly KmsClientInput _input;
    private readonly SimulatedTeeAuthority _authority;
    private readonly SimulatedEvidenceProvider _evidence;
    private readonly KmsPin _pin;

    public KmsAgentSide(KmsClientInput input)
    {
        _input = input;
        _authority = SimulatedTeeAuthority.LoadOrCreate(input.TeeDirectory, TimeProvider.System);
        _evidence = new SimulatedEvidenceProvider(_authority, Convert.FromHexString(input.MeasurementHex), "snp");
        _pin = new KmsPin(Convert.FromHexString(input.PinHex), TimeProvider.System);
        Client = NewClient();
    }

    /// <summary>The KMS pin every client of this side checks the KMS's certificate against.</summary>
    public KmsPin Pin => _pin;

    /// <summary>The pooled client: its connections are reused across calls.</summary>
    public KmsClient Client { get; }

    /// <summary>A client of its own, so a new TCP + TLS connection. One attempt, no retry: a failure is counted, not hidden.</summary>
    public KmsClient NewClient() => new(_input.Kms, _pin, TimeProvider.System, 1, TimeSpan.Zero);

    public Attestor Attestor(KmsClient client) => new(client, _evidence, _input.Function, TimeProvider.System);

    public void Dispose()
    {
        Client.Dispose();
        _authority.Dispose();
    }
}
