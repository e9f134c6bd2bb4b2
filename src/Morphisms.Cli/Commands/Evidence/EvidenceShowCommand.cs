using System.CommandLine;
using Morphisms.Attestation;
using Morphisms.Cli.Output;

namespace Morphisms.Cli.Commands.Evidence;

/// <summary><c>morph evidence show</c>: a human-readable dump of a report or quote, without verifying it.</summary>
public static class EvidenceShowCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var tee = new Option<string>("--tee") { Description = "TEE type: snp, sgx or tdx.", Required = true };
        tee.AcceptOnlyFromAmong("snp", "sgx", "tdx");
        var evidence = new Option<FileInfo>("--evidence") { Description = "Report (SNP) or quote (SGX/TDX) file, binary.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the fields as one JSON object." };
        var command = new Command("show", "Print every field of a report or quote (nothing is verified).") { tee, evidence, json };
        command.SetAction(async (parse, _) =>
        {
            TeeTypes.TryParse(parse.GetValue(tee), out var teeType);
            var file = parse.GetValue(evidence)!;
            try
            {
                var claims = EvidenceVerifier.Parse(teeType, BoundedInput.ReadFileBytes(file.FullName, BoundedInput.EvidenceLimit));
                await stdout.WriteAsync(parse.GetValue(json) ? ClaimFields.ToJson(claims) + Environment.NewLine : ClaimFields.ToText(claims));
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is EvidenceFormatException or IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }
}
