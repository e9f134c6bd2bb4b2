using System.CommandLine;
using System.Globalization;
using Morphisms.Attestation;
using Morphisms.Attestation.Collateral;
using Morphisms.Cli.Output;

namespace Morphisms.Cli.Commands.Evidence;

/// <summary>
/// <c>morph evidence verify</c>: verifies a report or quote against the vendor roots and the policy
/// given. Exit 0 = authentic and accepted, 1 = rejected, 2 = usage error or unreadable input.
/// Parsed fields are printed even when verification fails.
/// </summary>
public static class EvidenceVerifyCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var tee = new Option<string>("--tee") { Description = "TEE type: snp, sgx or tdx.", Required = true };
        tee.AcceptOnlyFromAmong("snp", "sgx", "tdx");
        var evidence = new Option<FileInfo>("--evidence") { Description = "Report (SNP) or quote (SGX/TDX) file, binary.", Required = true };
        var vcek = new Option<FileInfo?>("--vcek") { Description = "SNP: VCEK or VLEK certificate (DER or PEM; a PEM chain with ASK and ARK is accepted)." };
        var crl = new Option<FileInfo?>("--crl") { Description = "SNP: AMD CRL (DER or PEM) to check the chain against." };
        var collateral = new Option<string?>("--collateral") { Description = "SGX/TDX: collateral bundle file or directory (see docs/collateral.md)." };
        var time = new Option<string?>("--time") { Description = "Evaluation time, ISO 8601 (default: now). Intel collateral is valid for about 30 days." };
        var measurement = new Option<string?>("--expect-measurement") { Description = "Expected measurement (SNP MEASUREMENT, SGX MRENCLAVE, TDX MRTD): hex, or TEE:HEX as other commands print it (its TEE must be --tee's)." };
        var reportData = new Option<string?>("--expect-report-data") { Description = "Expected REPORT_DATA, hex (64 bytes)." };
        var acceptTcb = new Option<string[]>("--accept-tcb") { Description = "SGX/TDX TCB status to accept (repeatable), e.g. SWHardeningNeeded. Default: UpToDate only; any other accepted status makes the result a warning.", AllowMultipleArgumentsPerToken = true };
        var allowDebug = new Option<bool>("--allow-debug") { Description = "Accept a TEE that allows debugging (insecure)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object on stdout." };

        var command = new Command("verify", "Verify evidence: authenticity against the vendor roots, then the policy given.")
        {
            tee, evidence, vcek, crl, collateral, time, measurement, reportData, acceptTcb, allowDebug, json,
        };

        command.SetAction(async (parse, cancellationToken) =>
        {
            var asJson = parse.GetValue(json);
            EvidenceVerificationRequest request;
            try
            {
                TeeTypes.TryParse(parse.GetValue(tee), out var teeType);
                request = new EvidenceVerificationRequest
                {
                    Tee = teeType,
                    Evidence = ReadInput(parse.GetValue(evidence)!, "--evidence"),
                    SnpCertificate = parse.GetValue(vcek) is { } v ? ReadInput(v, "--vcek") : null,
                    SnpCrl = parse.GetValue(crl) is { } c ? ReadInput(c, "--crl") : null,
                    Collateral = parse.GetValue(collateral) is { } path ? OpenCollateral(path) : null,
                    EvaluationTime = parse.GetValue(time) is { } t ? ParseTime(t) : null,
                    ExpectedMeasurement = parse.GetValue(measurement) is { } m ? ParseMeasurement(m, teeType) : null,
                    ExpectedReportData = parse.GetValue(reportData) is { } r ? Hex.Parse(r, "--expect-report-data") : null,
                    AcceptedTcbStatuses = parse.GetValue(acceptTcb) is { Length: > 0 } statuses ? statuses : null,
                    AllowDebug = parse.GetValue(allowDebug),
                };
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
            {
                return InputError(e.Message, asJson, stdout, stderr);
            }

            AttestationResult result;
            try
            {
                result = await EvidenceVerifier.VerifyAsync(request, cancellationToken);
            }
            catch (EvidenceFormatException e)
            {
                return InputError(Unreadable(e, parse.GetValue(vcek), parse.GetValue(crl)), asJson, stdout, stderr);
            }

            if (request.AllowDebug)
            {
                await stderr.WriteLineAsync("warning: --allow-debug accepts a TEE whose memory the host can read");
            }

            if (asJson)
            {
                await stdout.WriteLineAsync(ResultJson.Serialize(result));
            }
            else
            {
                await stdout.WriteAsync(ResultText.Format(result));
            }

            return result.Accepted ? ExitCodes.Ok : ExitCodes.Rejected;
        });
        return command;
    }

    private static byte[] ReadInput(FileInfo file, string option)
    {
        // FileInfo.Exists is false for a directory as well, which is not "not found": reading it says what it is.
        if (!file.Exists && !Directory.Exists(file.FullName))
        {
            throw new FileNotFoundException($"{option}: file not found: {file.FullName}");
        }

        try
        {
            return BoundedInput.ReadFileBytes(file.FullName, BoundedInput.EvidenceLimit);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{option}: {e.Message}", e);
        }
    }

    // The verifier names the structure it could not read; a certificate or CRL the user passed is not evidence, and the
    // user fixes it by the option and the file, so those are what the message names.
    private static string Unreadable(EvidenceFormatException e, FileInfo? vcek, FileInfo? crl)
    {
        var (field, option, file) = e.Field.StartsWith("vcek", StringComparison.Ordinal) && vcek is not null ? ("vcek", "--vcek", vcek)
            : e.Field == "crl" && crl is not null ? ("crl", "--crl", crl)
            : (null, null, null);
        if (file is null)
        {
            return $"unreadable evidence: {e.Message}";
        }

        // "crl: not a DER X.509 CRL (…)" reads as "--crl FILE: not a DER X.509 CRL (…)"; a sub-field ("vcek extension
        // hwID: …") keeps its name.
        var detail = e.Field == field ? e.Message[(field!.Length + 2)..] : e.Message;
        return $"{option} {file.FullName}: {detail}";
    }

    // Bare hex, or typed as `morph deploy` and `morph invoke --show-attestation` print it: --tee already names the TEE,
    // so a typed value naming another one is a mix-up to report, not a prefix to drop.
    private static byte[] ParseMeasurement(string text, TeeType tee)
    {
        var value = text.Trim();
        var colon = value.IndexOf(':', StringComparison.Ordinal);
        if (colon >= 0)
        {
            var named = value[..colon];
            if (!TeeTypes.TryParse(named, out var typed))
            {
                throw new FormatException($"--expect-measurement: '{named}:' is not a TEE (snp, sgx or tdx)");
            }

            if (typed != tee)
            {
                throw new FormatException($"--expect-measurement is a {typed.ToWireName()} measurement, but --tee is {tee.ToWireName()}");
            }

            value = value[(colon + 1)..];
        }

        return Hex.Parse(value, "--expect-measurement");
    }

    private static ICollateralSource OpenCollateral(string path)
    {
        try
        {
            return OfflineCollateralStore.Open(path);
        }
        catch (EvidenceFormatException e)
        {
            throw new FormatException($"--collateral: {e.Message}");
        }
        catch (FileNotFoundException e)
        {
            throw new FileNotFoundException($"--collateral: no such file or directory: {e.FileName ?? path}", e.FileName ?? path, e);
        }
    }

    private static DateTimeOffset ParseTime(string text)
    {
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var time))
        {
            return time;
        }

        throw new FormatException($"--time: not an ISO 8601 time: {text}");
    }

    private static int InputError(string message, bool asJson, TextWriter stdout, TextWriter stderr)
    {
        if (asJson)
        {
            stdout.WriteLine(ResultJson.SerializeError(message));
        }

        stderr.WriteLine($"morph: {message}");
        return ExitCodes.UsageOrInput;
    }
}
