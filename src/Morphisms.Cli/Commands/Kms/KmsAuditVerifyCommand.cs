using System.CommandLine;
using System.Text.Json.Nodes;
using Morphisms.Attestation;
using Morphisms.Kms.Audit;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms audit verify FILE [--expected-last-hash H]</c>: checks an audit log's hash chain offline (no KMS, no
/// key). The MACs need the chain key, which never leaves the KMS: <c>sys/audit-verify</c> checks those. Exit 0 when
/// the chain holds, 1 when it is broken, 2 when the file cannot be read.
/// </summary>
public static class KmsAuditVerifyCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var file = new Argument<FileInfo>("file") { Description = "The audit log file." };
        var expected = new Option<string?>("--expected-last-hash") { Description = "A last_hash recorded earlier: detects a truncated tail." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("verify", "Verify an audit log's hash chain offline.") { file, expected, json };
        command.SetAction(async (parse, _) =>
        {
            var log = parse.GetValue(file)!;
            AuditVerification result;
            try
            {
                result = AuditLogVerifier.Verify(log.FullName, chainKey: null, parse.GetValue(expected));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A directory is "access denied" to .NET, which sends the user to check permissions, not the path.
                await stderr.WriteLineAsync($"morph: {(Directory.Exists(log.FullName) ? BoundedFile.NotAFile(log.FullName) : e.Message)}");
                return ExitCodes.UsageOrInput;
            }

            if (parse.GetValue(json))
            {
                await KmsAction.PrintJsonAsync(stdout, new JsonObject
                {
                    ["valid"] = result.Valid,
                    ["entries"] = result.Entries,
                    ["first_sequence"] = result.FirstSequence,
                    ["last_sequence"] = result.LastSequence,
                    ["last_hash"] = result.LastHash,
                    ["macs_checked"] = result.MacsChecked,
                    ["problems"] = new JsonArray([.. result.Problems.Select(p => (JsonNode)p)]),
                });
            }
            else
            {
                await stdout.WriteLineAsync($"{(result.Valid ? "valid" : "INVALID")}: {result.Entries} entries, last sequence {result.LastSequence}, last hash {result.LastHash}");
                await stdout.WriteLineAsync("MACs not checked (the chain key stays in the KMS: use sys/audit-verify for them)");
                foreach (var problem in result.Problems)
                {
                    await stdout.WriteLineAsync($"  problem: {problem}");
                }
            }

            return result.Valid ? ExitCodes.Ok : ExitCodes.Rejected;
        });
        return command;
    }
}
