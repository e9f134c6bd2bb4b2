using System.CommandLine;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Cli.Paths;
using Morphisms.Client.Trust;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms trust URL</c>: fetch the KMS's evidence with a fresh nonce, verify it and its binding
/// to the TLS key and root CA, and pin the root CA under the user's config directory. Nothing is
/// trusted on first use: a KMS whose evidence fails is not pinned.
/// </summary>
public static class KmsTrustCommand
{
    /// <summary>The trust store file under the config directory.</summary>
    public const string TrustFileName = "kms-trust.json";

    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var url = new Argument<string>("url") { Description = "The KMS base URL (https)." };
        var measurement = new Option<string?>("--expect-measurement") { Description = "Required KMS measurement, hex." };
        var dev = new Option<bool>("--dev") { Description = "Also trust this installation's simulated TEE (development only; says so loudly)." };
        var simulated = new Option<DirectoryInfo?>("--trust-simulated-tee") { Description = "Also trust the simulated TEE in DIR (development only)." };
        var json = new Option<bool>("--json") { Description = "Print the pinned record as JSON." };
        var command = new Command("trust", "Attest a KMS and pin its root CA for this user.") { url, measurement, dev, simulated, json };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var paths = MorphPaths.FromEnvironment();
            KmsTrustOptions options;
            SimulatedTeeAuthority? tee = null;
            try
            {
                var expected = parse.GetValue(measurement) is { } hex ? Hex.Parse(hex, "--expect-measurement") : null;
                var simulatedDir = parse.GetValue(simulated)?.FullName ?? (parse.GetValue(dev) ? paths.SimulatedTeeDirectory : null);
                if (simulatedDir is not null)
                {
                    tee = SimulatedTeeAuthority.Load(simulatedDir);
                }

                options = new KmsTrustOptions
                {
                    Anchors = tee?.TrustedWith(TrustAnchors.Vendor) ?? TrustAnchors.Vendor,
                    ExpectedMeasurement = expected,
                };
            }
            catch (Exception e) when (e is FormatException or FileNotFoundException or InvalidDataException)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }

            using (tee)
            {
                if (tee is not null)
                {
                    await stderr.WriteLineAsync($"warning: trusting the simulated TEE (root sha256 {tee.Fingerprint[..16]}…): a simulated KMS proves nothing about hardware");
                }

                var outcome = await KmsAttestationClient.VerifyAsync(parse.GetValue(url)!, options, cancellationToken);
                if (!outcome.Trusted)
                {
                    await stderr.WriteLineAsync($"morph: KMS NOT trusted; nothing was pinned:");
                    foreach (var failure in outcome.Failures)
                    {
                        await stderr.WriteLineAsync($"  {failure}");
                    }

                    return ExitCodes.Rejected;
                }

                var record = outcome.Record!;
                var store = new KmsTrustStore(Path.Combine(paths.ConfigDirectory, TrustFileName));
                try
                {
                    store.Save(record);
                }
                catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
                {
                    // The KMS passed, but a store that cannot be read back or written is the user's to fix: left as it is.
                    await stderr.WriteLineAsync($"morph: the KMS's evidence verified, but it was NOT pinned: {e.Message}");
                    return ExitCodes.UsageOrInput;
                }

                if (parse.GetValue(json))
                {
                    await stdout.WriteLineAsync(JsonSerializer.Serialize(record, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
                }
                else
                {
                    await stdout.WriteLineAsync($"trusted {record.KmsUrl}{(record.Simulated ? " (SIMULATED TEE)" : string.Empty)}");
                    await stdout.WriteLineAsync($"  evidence     {record.Tee}, {outcome.Attestation!.Status.ToWireName()}, bound to this TLS key and root CA with a fresh nonce");
                    await stdout.WriteLineAsync($"  measurement  {record.Measurement}");
                    await stdout.WriteLineAsync($"  root CA      sha256 {record.RootCaSha256} (pinned)");
                    await stdout.WriteLineAsync($"  TLS key      sha256 {record.TlsSpkiSha256}");
                    await stdout.WriteLineAsync($"  stored in    {store.Path}");
                }

                return ExitCodes.Ok;
            }
        });
        return command;
    }
}
