using System.Text.Json.Nodes;

namespace Morphisms.Agent.Telemetry;

/// <summary>Structured log: one JSON object per line (on standard error by default). Never given secret values.</summary>
public sealed class AgentLog(TextWriter writer, TimeProvider time, string function)
{
    private readonly Lock _gate = new();

    /// <summary>Lines longer than this may reach the stream in more than one write.</summary>
    public const int AtomicLineBytes = 16 * 1024;

    /// <summary>
    /// A writer over <paramref name="stream"/> that hands each line to it in one write. The app inherits the agent's
    /// standard error, and a pipe keeps a write of up to 4 KiB whole, so the agent's JSON lines (cold_start is ~700
    /// bytes) cannot be cut by the app's own output; <see cref="Console.Error"/> writes in 256-byte pieces.
    /// </summary>
    public static TextWriter LineAtomic(Stream stream) =>
        new StreamWriter(stream, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false), AtomicLineBytes, leaveOpen: true) { AutoFlush = true };

    /// <summary>Writes an event with optional fields.</summary>
    public void Write(string level, string @event, string message, JsonObject? fields = null)
    {
        var line = new JsonObject
        {
            ["ts"] = time.GetUtcNow().ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["level"] = level,
            ["component"] = "morph-init",
            ["function"] = function,
            ["event"] = @event,
            ["msg"] = message,
        };
        foreach (var (key, value) in fields ?? [])
        {
            line[key] = value?.DeepClone();
        }

        lock (_gate)
        {
            writer.WriteLine(line.ToJsonString());
            writer.Flush();
        }
    }

    /// <summary>An informational event.</summary>
    public void Info(string @event, string message, JsonObject? fields = null) => Write("info", @event, message, fields);

    /// <summary>A warning.</summary>
    public void Warn(string @event, string message, JsonObject? fields = null) => Write("warn", @event, message, fields);

    /// <summary>An error.</summary>
    public void Error(string @event, string message, JsonObject? fields = null) => Write("error", @event, message, fields);
}
