using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Morphisms.Deploy.Sgx;

namespace Morphisms.Cli.Commands.Measure;

/// <summary><c>morph measure sgx --sigstruct FILE</c>: MRENCLAVE, MRSIGNER, ISVPRODID and ISVSVN of a signed Gramine enclave.</summary>
public static class MeasureSgxCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var sigstruct = new Option<FileInfo>("--sigstruct") { Description = "The enclave's SIGSTRUCT (gramine-sgx-sign's NAME.sig).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the registry's sgx section as JSON." };
        var command = new Command("sgx", "Read and check a SIGSTRUCT; print the values to register.") { sigstruct, json };
        command.SetAction(async (parse, _) =>
        {
            SigStruct sig;
            try
            {
                sig = SigStruct.Parse(BoundedInput.ReadFileBytes(parse.GetValue(sigstruct)!.FullName, BoundedInput.EvidenceLimit));
            }
            catch (Exception e) when (e is SigStructFormatException or IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            // A SIGSTRUCT whose signature fails is not what the CPU would load; its values must not be registered.
            if (!sig.SignatureValid)
            {
                await stderr.WriteLineAsync("morph: the SIGSTRUCT's RSA-3072 signature does not verify (file corrupted or tampered with)");
                return ExitCodes.Rejected;
            }

            if (sig.Debug)
            {
                await stderr.WriteLineAsync("morph: warning: the DEBUG attribute is set; the host can read this enclave's memory and the KMS refuses debug enclaves");
            }

            if (parse.GetValue(json))
            {
                var section = new JsonObject
                {
                    ["sgx"] = new JsonObject
                    {
                        ["mrenclaves"] = new JsonArray(Convert.ToHexStringLower(sig.MrEnclave)),
                        ["mrsigner"] = Convert.ToHexStringLower(sig.MrSigner),
                        ["isv_prod_id"] = sig.IsvProdId,
                        ["min_isv_svn"] = sig.IsvSvn,
                    },
                };
                await stdout.WriteLineAsync(section.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Ok;
            }

            await stdout.WriteLineAsync($"mrenclave      {Convert.ToHexStringLower(sig.MrEnclave)}");
            await stdout.WriteLineAsync($"mrsigner       {Convert.ToHexStringLower(sig.MrSigner)}");
            await stdout.WriteLineAsync($"isv_prod_id    {sig.IsvProdId}");
            await stdout.WriteLineAsync($"isv_svn        {sig.IsvSvn}");
            await stdout.WriteLineAsync($"attributes     {Convert.ToHexStringLower(sig.Attributes)} (mask {Convert.ToHexStringLower(sig.AttributeMask)}){(sig.Debug ? " DEBUG" : string.Empty)}");
            await stdout.WriteLineAsync($"miscselect     {sig.MiscSelect:x8} (mask {sig.MiscMask:x8})");
            await stdout.WriteLineAsync("signature      valid (RSA-3072, e=3, q1/q2 consistent)");
            return ExitCodes.Ok;
        });
        return command;
    }
}
