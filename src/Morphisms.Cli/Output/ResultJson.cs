using System.Text;
using System.Text.Json;
using Morphisms.Attestation;

namespace Morphisms.Cli.Output;

/// <summary>
/// The JSON object <c>morph evidence verify --json</c> prints (DESIGN.md §4): <c>status</c>, <c>tee</c>,
/// <c>measurement</c>, <c>report_data</c>, <c>tcb_status</c>, <c>failures</c>, plus <c>simulated</c>,
/// <c>advisory_ids</c>, <c>warnings</c> and every parsed field under <c>claims</c>. Bytes are lowercase hex.
/// </summary>
public static class ResultJson
{
    /// <summary>Serialises a result.</summary>
    public static string Serialize(AttestationResult result)
    {
        return Write(json =>
        {
            json.WriteString("status", result.Status.ToWireName());
            json.WriteString("tee", result.Tee.ToWireName());
            json.WriteBoolean("simulated", result.Simulated);
            json.WriteString("measurement", Hex.Of(result.Claims.Measurement));
            json.WriteString("report_data", Hex.Of(result.Claims.ReportData));
            if (result.TcbStatus is { } tcb)
            {
                json.WriteString("tcb_status", tcb);
            }
            else
            {
                json.WriteNull("tcb_status");
            }

            WriteStrings(json, "advisory_ids", result.AdvisoryIds);
            WriteStrings(json, "failures", result.Failures.Select(f => f.ToString()));
            WriteStrings(json, "warnings", result.Warnings);
            json.WriteStartObject("claims");
            ClaimFields.WriteProperties(json, result.Claims);
            json.WriteEndObject();
        });
    }

    /// <summary>The object printed when the input could not be read at all (exit code 2).</summary>
    public static string SerializeError(string message) => Write(json =>
    {
        json.WriteString("status", "error");
        json.WriteString("error", message);
        WriteStrings(json, "failures", [message]);
    });

    private static string Write(Action<Utf8JsonWriter> body)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            body(json);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteStrings(Utf8JsonWriter json, string name, IEnumerable<string> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteStringValue(value);
        }

        json.WriteEndArray();
    }
}
