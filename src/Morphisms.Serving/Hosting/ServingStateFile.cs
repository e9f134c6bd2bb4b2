using System.Text.Json;
using Morphisms.Attestation;

namespace Morphisms.Serving.Hosting;

/// <summary>
/// Where a running serving host can be found: written by the host, read by <c>morph deploy|ls|...</c>. It holds
/// addresses and the path of the control token file, never the token itself, so printing or copying it leaks nothing.
/// </summary>
/// <param name="Control">The control API's base URL.</param>
/// <param name="Gateway">The gateway's address (<c>host:port</c>).</param>
/// <param name="Mode"><c>confidential</c> or <c>http</c>.</param>
/// <param name="Pid">The host's process id.</param>
/// <param name="ControlTokenFile">The file (mode 0600) holding the control API's bearer token; null when the host keeps it in memory only.</param>
/// <param name="MetricsTokenFile">The file (mode 0600) holding the token that opens <c>GET /metrics</c> only; null when none is written.</param>
public sealed record ServingStateFile(string Control, string Gateway, string Mode, int Pid, string? ControlTokenFile = null, string? MetricsTokenFile = null)
{
    /// <summary>The file name under the data directory.</summary>
    public const string FileName = "serving.json";

    /// <summary>The control token file's name beside the state file, where <c>morph up</c> puts it.</summary>
    public const string ControlTokenFileName = "serving-control-token";

    /// <summary>The metrics token file's name beside the state file, where <c>morph up</c> puts it.</summary>
    public const string MetricsTokenFileName = "serving-metrics-token";

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, WriteIndented = true };

    /// <summary>Writes the file atomically, mode 0600 (see <see cref="PrivateFile"/>).</summary>
    public void Write(string path) => PrivateFile.Write(path, JsonSerializer.Serialize(this, Json));

    /// <summary>Reads the file, or null when absent or unreadable.</summary>
    public static ServingStateFile? Read(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<ServingStateFile>(File.ReadAllText(path), Json) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
