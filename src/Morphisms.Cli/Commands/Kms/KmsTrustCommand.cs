using System.CommandLine;
using System.Text.Json;
using Morphisms.Attestation;
using Morphisms.Attestation.Simulated;
using Morphisms.Attestation.Trust;
using Morphisms.Cli.Paths;
using Morphisms.Client.Trust;
using Morphisms.Kms.SelfAttestation;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// <c>morph kms trust URL</c>: fetch the KMS's evidence with a fresh nonce, verify it, its measurement and its binding
/// to the TLS key and root CA, and pin the root CA under the user's config directory. A KMS whose evidence fails is not
/// pinned, and neither is one whose measurement the user did not name — genuine evidence alone proves only that some
/// TEE holds the keys, and anyone can rent a TEE to run a look-alike KMS in. The measurement names the code, not the
/// operator: the published KMS image run in someone else's TEE passes it with a root CA of their own. So
/// <c>--expect-root-ca</c> takes the root CA fingerprint the operator publishes and refuses any other root; without it
/// the root is pinned on first use, with a warning that shows its fingerprint to compare. Trusting a pinned KMS again
/// (a measurement upgrade) keeps its root: a different one is refused unless <c>--expect-root-ca</c> names it or
/// <c>--replace-root</c> is given, or every re-trust would be a fresh first use. The KMS must prove it holds the root's
/// key (the root certificate is public), so a re-trust under the same root may replace the TLS key pinned for the address.
/// </summary>
public static class KmsTrustCommand
{
    /// <summary>The trust store file under the config directory.</summary>
    public const string TrustFileName = "kms-trust.json";

    /// <summary>What <c>morph kms trust</c> says when no measurement is given, and how to get one.</summary>
    internal const string MissingMeasurement =
        "--expect-measurement TEE:HEX is required: without it, genuine evidence proves only that some TEE holds the KMS's keys, "
        + "not that it runs the Morphisms KMS (anyone can rent a TEE and run their own KMS there). Give the measurement "
        + "published with the KMS image you run, as " + KmsMeasurementPin.Syntax + ", and repeat the option to accept "
        + "several, e.g. during a KMS upgrade. --dev expects this installation's dev KMS by itself; "
        + "--any-measurement skips the check (insecure). Nothing was pinned.";

    /// <summary>
    /// The pin of a dev KMS (<c>morph kms server --dev</c>, <c>morph up</c>) reporting <paramref name="measurement"/>:
    /// its simulated evidence is SNP-format (<c>SimulatedKmsEvidenceProvider</c>), so the measurement is an SNP one.
    /// </summary>
    internal static KmsMeasurementPin DevKmsPin(byte[] measurement) => KmsMeasurementPin.Snp(measurement);

    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var url = new Argument<string>("url") { Description = "The KMS base URL (https)." };
        var measurement = new Option<string[]>("--expect-measurement")
        {
            Description = "The KMS measurement to require, tied to its TEE: " + KmsMeasurementPin.Syntax
                + " (repeatable: any of them, e.g. during an upgrade; bare hex is read as sgx: for 64 digits, snp: for 96, never tdx:). "
                + "Required unless --dev or --any-measurement.",
            AllowMultipleArgumentsPerToken = false,
            HelpName = "TEE:HEX",
        };
        var rootCa = new Option<string?>("--expect-root-ca")
        {
            Description = "The SHA-256 of the KMS root CA certificate (DER) its operator publishes (`morph kms status` on the KMS shows it), "
                + "64 hex digits, colons allowed: any other root is refused. Without it the first trust of an address pins the root it shows (with a warning), "
                + "and a later one keeps that root and refuses another unless --replace-root is given.",
            HelpName = "SHA256",
        };
        var replaceRoot = new Option<bool>("--replace-root")
        {
            Description = "Replace the root CA already pinned for this address with the one the KMS presents now, without --expect-root-ca "
                + "naming it (says so loudly). Without either, a different root is refused.",
        };
        var anyMeasurement = new Option<bool>("--any-measurement") { Description = "INSECURE: pin a KMS whatever its measurement (any genuine TEE passes); says so loudly." };
        var dev = new Option<bool>("--dev") { Description = "Also trust this installation's simulated TEE (development only; says so loudly)." };
        var simulated = new Option<DirectoryInfo?>("--trust-simulated-tee") { Description = "Also trust the simulated TEE in DIR (development only)." };
        var json = new Option<bool>("--json") { Description = "Print the pinned record as JSON." };
        var command = new Command("trust", "Attest a KMS, check its measurement and pin its root CA for this user.") { url, measurement, rootCa, replaceRoot, anyMeasurement, dev, simulated, json };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var paths = MorphPaths.FromEnvironment();
            KmsTrustOptions options;
            SimulatedTeeAuthority? tee = null;
            try
            {
                // Every flag is checked before the simulated TEE is loaded: a usage error changes nothing.
                var address = parse.GetValue(url)!;
                if (!Uri.TryCreate(address, UriKind.Absolute, out var parsed) || parsed.Scheme != Uri.UriSchemeHttps)
                {
                    await stderr.WriteLineAsync($"morph: {address}: not an https URL (a KMS can only be attested over https: its evidence binds the TLS key)");
                    return ExitCodes.UsageOrInput;
                }

                var given = parse.GetValue(measurement) ?? [];
                var expected = given.Select(ParseExpected).ToList();
                var simulatedDir = parse.GetValue(simulated)?.FullName ?? (parse.GetValue(dev) ? paths.SimulatedTeeDirectory : null);
                var expectedRoot = parse.GetValue(rootCa) is { } root ? ParseExpectedRootCa(root) : null;
                options = new KmsTrustOptions { ExpectedMeasurements = expected, AnyMeasurement = parse.GetValue(anyMeasurement), ExpectedRootCaSha256 = expectedRoot };
                if (MeasurementUsageProblem(options, simulatedDir is not null) is { } usage)
                {
                    await stderr.WriteLineAsync($"morph: {usage}");
                    return ExitCodes.UsageOrInput;
                }

                if (!options.AnyMeasurement && expected.Count == 0)
                {
                    // A dev KMS (`morph kms server --dev`, `morph up`) of this installation is this very build, so its
                    // measurement is known here. Expecting it keeps --dev from accepting ANY genuine hardware KMS (the
                    // vendor roots stay trusted beside the simulated one) while the dev flow needs no typing.
                    options = options with { ExpectedMeasurements = [DevKmsPin(KmsMeasurement.Simulated)] };
                    await stderr.WriteLineAsync($"note: expecting this installation's dev KMS measurement {options.ExpectedMeasurements[0]} (a KMS of another build needs --expect-measurement)");
                }

                foreach (var untyped in given.Where(g => !KmsMeasurementPin.IsTyped(g)))
                {
                    // Kept working for SNP and SGX, whose single value is a complete pin; said, so a TDX MRTD given bare
                    // is recognisable in the refusal that follows.
                    await stderr.WriteLineAsync($"note: --expect-measurement {untyped.Trim()} has no TEE: read as {KmsMeasurementPin.Parse(untyped)} (a TDX KMS needs {KmsMeasurementPin.SyntaxFor(TeeType.Tdx)})");
                }

                if (simulatedDir is not null)
                {
                    tee = SimulatedTeeAuthority.Load(simulatedDir);
                }

                options = options with { Anchors = tee?.TrustedWith(TrustAnchors.Vendor) ?? TrustAnchors.Vendor };
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

                if (options.AnyMeasurement)
                {
                    await stderr.WriteLineAsync(AnyMeasurementWarning);
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
                KmsTrustRecord? previous;
                try
                {
                    // A KMS keeps its root CA across restarts and upgrades; one that shows another is another KMS (the
                    // published image run by someone on the network path, say), so it replaces the pin only when the
                    // user named that root or asked for the replacement. The store compares under its lock.
                    previous = store.Save(record, keepPinnedRoot: options.ExpectedRootCaSha256 is null && !parse.GetValue(replaceRoot));
                }
                catch (KmsRootChangedException e)
                {
                    await stderr.WriteLineAsync(RootChangedRefusal(e.Pinned, e.Presented));
                    return ExitCodes.Rejected;
                }
                catch (FileNotDurableException e)
                {
                    // In place, but a crash may still lose it: trusting again re-writes the same record and flushes again.
                    await stderr.WriteLineAsync($"morph: the KMS's evidence verified and it was pinned, but {e.Message}; run this command again to be sure the pin is kept");
                    return ExitCodes.UsageOrInput;
                }
                catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
                {
                    // The KMS passed, but a store that cannot be read back or written is the user's to fix: left as it is.
                    await stderr.WriteLineAsync($"morph: the KMS's evidence verified, but it was NOT pinned: {e.Message}");
                    return ExitCodes.UsageOrInput;
                }

                var sameRoot = previous is not null && string.Equals(previous.RootCaSha256, record.RootCaSha256, StringComparison.OrdinalIgnoreCase);
                if (previous is not null && !sameRoot)
                {
                    await stderr.WriteLineAsync(options.ExpectedRootCaSha256 is null
                        ? RootReplacedWarning(previous.RootCaSha256, record.RootCaSha256)
                        : $"note: replaced the pinned root CA sha256 {previous.RootCaSha256} with root CA sha256 {record.RootCaSha256}, the one expected");
                }

                // A first use happens once per address: trusting it again with the root it already pins is no new one.
                var pinnedHow = options.ExpectedRootCaSha256 is not null ? "the one expected"
                    : previous is null ? "on first use"
                    : sameRoot ? $"unchanged from the record made {previous.VerifiedAt.ToUniversalTime():yyyy-MM-ddTHH:mm:ssZ}"
                    : "REPLACED, unchecked";
                if (options.ExpectedRootCaSha256 is null && previous is null)
                {
                    await stderr.WriteLineAsync(FirstUseWarning(record.RootCaSha256));
                }
                else if (options.ExpectedRootCaSha256 is null && sameRoot)
                {
                    await stderr.WriteLineAsync($"note: root CA sha256 {record.RootCaSha256} {pinnedHow}: the pin for this address was kept");
                }

                if (sameRoot && !string.Equals(previous!.TlsSpkiSha256, record.TlsSpkiSha256, StringComparison.OrdinalIgnoreCase))
                {
                    // `morph kms` follows this key from now on: said, with why it is the KMS's (the root is public, its key is not).
                    await stderr.WriteLineAsync($"note: the TLS key pinned for this address changed from sha256 {previous.TlsSpkiSha256} to sha256 {record.TlsSpkiSha256}; "
                        + $"the KMS proved it holds the key of root CA sha256 {record.RootCaSha256} over it");
                }

                foreach (var warning in outcome.Warnings)
                {
                    // Whatever the output format: the KMS is pinned (existing deployments keep working), but by a pin an
                    // impostor on the same Kata guest image passes too, so the command that binds the workload is shown.
                    await stderr.WriteLineAsync($"WARNING! {warning}: morph kms trust {record.KmsUrl} --expect-measurement {record.Measurement}");
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
                    await stdout.WriteLineAsync(record.AnyMeasurement
                        ? "  required     ANY measurement (--any-measurement: NOT checked)"
                        : $"  required     {string.Join(" or ", record.ExpectedMeasurements)}");
                    await stdout.WriteLineAsync($"  root CA      sha256 {record.RootCaSha256} (pinned, {pinnedHow})");
                    await stdout.WriteLineAsync($"  TLS key      sha256 {record.TlsSpkiSha256}");
                    await stdout.WriteLineAsync($"  stored in    {store.Path}");
                }

                return ExitCodes.Ok;
            }
        });
        return command;
    }

    /// <summary>Parses one <c>--expect-measurement</c>; a <see cref="FormatException"/> names the option and what is wrong.</summary>
    private static KmsMeasurementPin ParseExpected(string text)
    {
        try
        {
            return KmsMeasurementPin.Parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"--expect-measurement: {e.Message}", e);
        }
    }

    /// <summary>Parses <c>--expect-root-ca</c>; a <see cref="FormatException"/> names the option and what is wrong.</summary>
    private static string ParseExpectedRootCa(string text)
    {
        try
        {
            return KmsTrustOptions.ParseRootCaSha256(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"--expect-root-ca: {e.Message}", e);
        }
    }

    /// <summary>
    /// What a pin without <c>--expect-root-ca</c> leaves open, printed when an address is first pinned, with the
    /// fingerprint to compare: the checks passed say which code answered, not whose KMS it is.
    /// </summary>
    internal static string FirstUseWarning(string rootCaSha256) =>
        $"warning: the root CA was pinned on first use: root CA sha256 {rootCaSha256}. The evidence shows which code the KMS "
        + "runs, not who runs it: anyone on the network path could run the same KMS image in a TEE of their own and answer "
        + "with their own root CA. Compare this fingerprint with the one the KMS's operator publishes (`morph kms status` "
        + "on the KMS shows it), and give it with --expect-root-ca to have any other root refused.";

    /// <summary>
    /// What <c>morph kms trust</c> says when the KMS at a pinned address presents another root CA and neither
    /// <c>--expect-root-ca</c> nor <c>--replace-root</c> was given: both fingerprints, and that nothing changed.
    /// </summary>
    internal static string RootChangedRefusal(KmsTrustRecord pinned, KmsTrustRecord presented) =>
        $"morph: KMS NOT pinned: {pinned.KmsUrl} is pinned to root CA sha256 {pinned.RootCaSha256}, but the KMS now presents "
        + $"root CA sha256 {presented.RootCaSha256}. A KMS keeps its root CA across restarts and upgrades: another root means "
        + "another KMS, which may be the same image run in someone else's TEE on the network path. Nothing was written. If the "
        + $"KMS's operator publishes the new root, trust it with --expect-root-ca {presented.RootCaSha256}; --replace-root "
        + "replaces the pin without that check.";

    /// <summary>What <c>--replace-root</c> did without <c>--expect-root-ca</c>, naming both roots.</summary>
    internal static string RootReplacedWarning(string pinned, string presented) =>
        $"WARNING! --replace-root: the pinned root CA sha256 {pinned} was REPLACED by root CA sha256 {presented}, which nobody "
        + "checked: every function certificate it issues is now accepted, and `morph kms` follows this record's TLS pin. "
        + "Compare it with the fingerprint the KMS's operator publishes.";

    /// <summary>
    /// Why the measurement flags cannot be used, or null: none given outside dev mode (where the measurement of this
    /// build's KMS is expected instead), or both a measurement and <c>--any-measurement</c>.
    /// </summary>
    private static string? MeasurementUsageProblem(KmsTrustOptions options, bool simulatedTee)
    {
        if (options.AnyMeasurement && options.ExpectedMeasurements.Count > 0)
        {
            return "--any-measurement and --expect-measurement contradict each other: give one or the other";
        }

        if (options.AnyMeasurement || options.ExpectedMeasurements.Count > 0)
        {
            return options.MeasurementPolicyProblem() is { } problem ? $"--expect-measurement: {problem}" : null;
        }

        return simulatedTee ? null : MissingMeasurement;
    }

    /// <summary>What <c>--any-measurement</c> gives up, printed every time it is used.</summary>
    internal const string AnyMeasurementWarning =
        "WARNING! --any-measurement: the KMS's measurement is NOT checked. The evidence then proves only that SOME genuine TEE "
        + "holds this TLS key and root CA, not that it runs the Morphisms KMS: anyone who rents a TEE can run their own KMS "
        + "there, and every function certificate it issues would be accepted. Pin with --expect-measurement instead.";
}
