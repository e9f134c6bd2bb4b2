using System.Text.Json;
using Morphisms.Serving.Spec;

namespace Morphisms.Serving.Revisions;

/// <summary>
/// The launch configuration of a revision: everything about how its code is started, in one
/// canonical JSON document (sorted keys, no whitespace). It is measured together with the bundle,
/// so changing the command, port, environment or secret path changes the measurement just as
/// changing one byte of code does. Scale and traffic are not in it: they do not change what runs.
/// </summary>
public static class LaunchConfig
{
    /// <summary>
    /// The canonical launch configuration of <paramref name="spec"/>. <paramref name="kmsCaSha256"/> (hex SHA-256
    /// of the KMS CA the agent pins) is written as <c>kms_ca_sha256</c>: the agent reads its pin from here, so the
    /// pin is measured and a host that points instances at another KMS changes their measurement.
    /// </summary>
    public static byte[] For(FunctionSpec spec, string? kmsCaSha256 = null)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartArray("command");
            foreach (var argument in spec.Command)
            {
                json.WriteStringValue(argument);
            }

            json.WriteEndArray();
            json.WriteStartObject("env");
            foreach (var (key, value) in spec.Env.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                json.WriteString(key, value);
            }

            json.WriteEndObject();
            json.WriteString("function", spec.Name);
            if (kmsCaSha256 is not null)
            {
                json.WriteString("kms_ca_sha256", kmsCaSha256.ToLowerInvariant());
            }

            json.WriteNumber("port", spec.Port);
            if (spec.Secrets is { } secrets)
            {
                json.WriteString("secrets", secrets);
            }
            else
            {
                json.WriteNull("secrets");
            }

            json.WriteString("tee", spec.Tee.ToString().ToLowerInvariant());
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
