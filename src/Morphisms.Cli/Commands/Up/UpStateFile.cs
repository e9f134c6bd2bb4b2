using System.Text.Json;
using Morphisms.Attestation;

namespace Morphisms.Cli.Commands.Up;

/// <summary>
/// Where a running <c>morph up</c> can be found (<c>DATA/up.json</c>, mode 0600): the KMS address, the file with its
/// TLS certificate, the file with the operator token, the functions' domain and the gateway. It never holds the token
/// itself, so printing or copying it leaks nothing; the token file beside it is 0600 too.
/// </summary>
/// <param name="KmsUrl">The KMS base URL (https, loopback).</param>
/// <param name="KmsCaFile">PEM of the KMS's TLS certificate (self-signed, regenerated at each start).</param>
/// <param name="KmsCaSha256">Lowercase hex SHA-256 of that certificate: the pin serving writes into launch configurations.</param>
/// <param name="TokenFile">The file holding a KMS token that can register functions (the dev root token).</param>
/// <param name="Gateway">The confidential gateway's <c>host:port</c>.</param>
/// <param name="Domain">Functions are served at <c>NAME.DOMAIN</c>.</param>
/// <param name="Control">The serving control API.</param>
/// <param name="Pid">The <c>morph up</c> process.</param>
public sealed record UpStateFile(string KmsUrl, string KmsCaFile, string KmsCaSha256, string TokenFile, string Gateway, string Domain, string Control, int Pid)
{
    /// <summary>The file name under the data directory.</summary>
    public const string FileName = "up.json";

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>Writes the file atomically, mode 0600.</summary>
    public void Write(string path) => PrivateFile.Write(path, JsonSerializer.Serialize(this, Json));

    /// <summary>Reads the file; null when absent, unreadable, or written by a process that is gone (a crash leaves it behind).</summary>
    public static UpStateFile? ReadLive(string path)
    {
        try
        {
            var state = File.Exists(path) ? JsonSerializer.Deserialize<UpStateFile>(File.ReadAllText(path), Json) : null;
            return state is not null && IsAlive(state.Pid) ? state : null;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
