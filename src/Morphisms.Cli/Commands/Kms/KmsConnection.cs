using System.CommandLine;
using Morphisms.Client.Trust;

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

    private readonly Option<string?> _address = new("--address") { Description = $"KMS URL: https, or http on loopback only (default: ${AddressVariable}, else the running morph up's)." };
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

        // Without an address, a running `morph up` is the KMS meant: its address, TLS certificate and token file. Without
        // one either there is no KMS to guess at: a default address would only fail later with a transport error that
        // names neither `morph up` nor the options (exit 1, as for `morph invoke` and `morph ls` without a `morph up`).
        var upFile = Path.Combine(paths.DataDirectory, Up.UpStateFile.FileName);
        var up = explicitAddress is null ? Up.UpStateFile.ReadLive(upFile) : null;
        if (explicitAddress is null && up is null)
        {
            throw new KmsCliException(ExitCodes.Rejected, $"no `morph up` is running ({(File.Exists(upFile) ? $"{upFile} is left from one that stopped" : $"no {upFile}")}): "
                + $"start one, or give the KMS's address with --address URL or {AddressVariable}");
        }

        var text = explicitAddress ?? up!.KmsUrl;
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
        var store = new KmsTrustStore(Path.Combine(paths.ConfigDirectory, KmsTrustCommand.TrustFileName));
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
            return token.Length > 0 ? Checked(token, $"{what}: {path}", path) : throw KmsCliException.Usage($"{what}: {path} is empty");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw KmsCliException.Usage($"{what}: {e.Message}");
        }
    }

    /// <summary>
    /// The token, when it can go in an HTTP header: printable ASCII only. Anything else (two lines, a stray control
    /// character, non-ASCII) is a usage error naming where it came from — never the token — rather than a header
    /// exception or a misleading "cannot reach the KMS". A JSON object is not a token either: it is the dev KMS's key file
    /// (<c>PATH.dev-keys.json</c>) or <c>morph kms init</c>'s output, whose unseal keys would otherwise be sent as the
    /// token (and refused with a bare 403); the message says how to take the root token out of it.
    /// </summary>
    private static string Checked(string token, string source, string? file = null) =>
        token.StartsWith('{')
            ? throw KmsCliException.Usage($"{source}: JSON, not a token (a dev KMS's PATH.dev-keys.json and `morph kms init`'s output hold the root token as root_token, "
                + $"beside the unseal keys): put the token alone in a file of its own, e.g. (umask 077; jq -r .root_token {file ?? "FILE"} > token), and pass --token-file token")
            : token.All(c => c is >= ' ' and <= '~')
                ? token
                : throw KmsCliException.Usage($"{source}: not a token (a token is one line of printable ASCII)");

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
