using System.CommandLine;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// The options every client command shares: where the KMS is, which CA to trust, where the token comes from, and
/// <c>--json</c>. A token is never an option value: argv is visible to every process on the machine. When
/// <c>morph kms trust</c> pinned the address, the pin (<see cref="KmsTlsPin"/>) decides TLS trust instead of the system roots.
/// </summary>
public sealed class KmsConnection
{
    /// <summary>Environment variable with the KMS address.</summary>
    public const string AddressVariable = "MORPH_KMS_ADDR";

    /// <summary>Environment variable with the token.</summary>
    public const string TokenVariable = "MORPH_KMS_TOKEN";

    /// <summary>Environment variable with a PEM file of certificates to trust for the KMS's TLS.</summary>
    public const string CaCertVariable = "MORPH_KMS_CACERT";

    /// <summary>The address used when neither <c>--address</c> nor <see cref="AddressVariable"/> is set.</summary>
    public const string DefaultAddress = "http://127.0.0.1:8200";

    private readonly Option<string?> _address = new("--address") { Description = $"KMS URL: https, or http on loopback only (default: ${AddressVariable}, else a running morph up, else {DefaultAddress})." };
    private readonly Option<FileInfo?> _caCert = new("--ca-cert") { Description = $"PEM certificate(s) to trust for the KMS's TLS (default: ${CaCertVariable}); a KMS pinned by `morph kms trust` must show its attested TLS key as well." };
    private readonly Option<FileInfo?> _tokenFile = new("--token-file") { Description = $"File holding the token (default: ${TokenVariable})." };
    private readonly Option<bool> _json = new("--json") { Description = "Print the KMS's JSON response." };

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(_address);
        command.Options.Add(_caCert);
        command.Options.Add(_tokenFile);
        command.Options.Add(_json);
    }

    /// <summary>Whether <c>--json</c> was given.</summary>
    public bool Json(ParseResult parse) => parse.GetValue(_json);

    /// <summary>A client for the parsed options; <paramref name="needsToken"/> makes a missing token a usage error.</summary>
    /// <exception cref="KmsCliException">
    /// The address, CA file or token file is unusable, or the address is plain http to another machine (see
    /// <see cref="KmsHttp.MayCarrySecrets"/>).
    /// </exception>
    public KmsHttp Connect(ParseResult parse, bool needsToken = true)
    {
        var explicitAddress = parse.GetValue(_address) ?? NonEmpty(Environment.GetEnvironmentVariable(AddressVariable));
        var paths = Paths.MorphPaths.FromEnvironment();

        // Without an address, a running `morph up` is the KMS meant: its address, TLS certificate and token file.
        var up = explicitAddress is null
            ? Up.UpStateFile.ReadLive(Path.Combine(paths.DataDirectory, Up.UpStateFile.FileName))
            : null;
        var text = explicitAddress ?? up?.KmsUrl ?? DefaultAddress;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var address) || address.Scheme is not ("http" or "https"))
        {
            throw KmsCliException.Usage($"--address: not an http(s) URL: {text}");
        }

        var caFile = parse.GetValue(_caCert)?.FullName ?? NonEmpty(Environment.GetEnvironmentVariable(CaCertVariable)) ?? up?.KmsCaFile;
        var token = Token(parse) ?? (up is null ? null : ReadTokenFile(up.TokenFile, "morph up's token file"));
        if (needsToken && token is null)
        {
            throw KmsCliException.Usage($"no token: set {TokenVariable} or pass --token-file FILE");
        }

        return new KmsHttp(address, token, caFile, Pin(paths, address));
    }

    /// <summary>
    /// The TLS pin of <paramref name="address"/> from the user's <c>morph kms trust</c> records, or null when it has none. A
    /// store that cannot be read is an error rather than no pin: it may hold one.
    /// </summary>
    private static KmsTlsPin? Pin(Paths.MorphPaths paths, Uri address)
    {
        var store = new Client.Trust.KmsTrustStore(Path.Combine(paths.ConfigDirectory, KmsTrustCommand.TrustFileName));
        try
        {
            return KmsTlsPin.For(store, address);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw KmsCliException.Usage($"the KMS trust records cannot be read, so whether {address.GetLeftPart(UriPartial.Authority)} is pinned is unknown: {e.Message}");
        }
    }

    private string? Token(ParseResult parse) =>
        parse.GetValue(_tokenFile) is { } file
            ? ReadTokenFile(file.FullName, "--token-file")
            : NonEmpty(Environment.GetEnvironmentVariable(TokenVariable)?.Trim()) is { } token ? Checked(token, $"${TokenVariable}") : null;

    private static string ReadTokenFile(string path, string what)
    {
        try
        {
            var token = BoundedInput.ReadFile(path, BoundedInput.SecretLimit).Trim();
            return token.Length > 0 ? Checked(token, $"{what}: {path}") : throw KmsCliException.Usage($"{what}: {path} is empty");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw KmsCliException.Usage($"{what}: {e.Message}");
        }
    }

    /// <summary>
    /// The token, when it can go in an HTTP header: printable ASCII only. Anything else (two lines, a stray control
    /// character, non-ASCII) is a usage error naming where it came from — never the token — rather than a header
    /// exception or a misleading "cannot reach the KMS".
    /// </summary>
    private static string Checked(string token, string source) =>
        token.All(c => c is >= ' ' and <= '~')
            ? token
            : throw KmsCliException.Usage($"{source}: not a token (a token is one line of printable ASCII)");

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
