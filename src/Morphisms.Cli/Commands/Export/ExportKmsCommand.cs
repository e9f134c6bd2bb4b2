using System.CommandLine;
using Morphisms.Attestation;
using Morphisms.Client.Trust;
using Morphisms.Deploy.Kms;
using Morphisms.Deploy.Knative;

namespace Morphisms.Cli.Commands.Export;

/// <summary>
/// <c>morph export kms --tee snp|tdx</c>: an N-replica KMS Deployment and Service, as plain YAML and as a kustomization,
/// each replica in a Kata confidential VM with a measured agent policy and a TLS key made inside the TEE.
/// <c>--insecure-no-tee</c> keeps an ordinary pod with the key in a Secret, for test clusters, and warns.
/// </summary>
public static class ExportKmsCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var image = new Option<string>("--image") { Description = "KMS image (morph) pinned by digest (name@sha256:...).", Required = true };
        // No default: SNP and TDX need different runtime classes and registrations, and no choice must never mean no TEE.
        var tee = new Option<string?>("--tee") { Description = "snp or tdx: the TEE each replica runs in (a Kata confidential VM). Required unless --insecure-no-tee." };
        tee.AcceptOnlyFromAmong("snp", "tdx");
        var runtimeClass = new Option<string?>("--runtime-class") { Description = "Runtime class, when the cluster's is not kata-qemu-snp / kata-qemu-tdx." };
        var executable = new Option<string>("--command") { Description = "Path of the morph executable in the image (the agent policy pins the whole argv).", DefaultValueFactory = _ => KmsExportRequest.DefaultCommand };
        var guest = new Option<string?>("--guest-measurement")
        {
            Description = "The Kata guest image's launch values for --tee, from your Kata install (the same for every pod of the runtime class): "
                + "snp:MEASUREMENT or tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3. The KMS pin printed then is complete, with the initdata's host_data / mrconfigid "
                + "that binds this KMS; without it the pin names them as placeholders.",
            HelpName = "TEE:HEX",
        };
        var insecure = new Option<bool>("--insecure-no-tee") { Description = "INSECURE, test clusters only: no TEE, TLS key from a Secret the cluster's administrators can read." };
        var replicas = new Option<int>("--replicas") { Description = "Number of KMS replicas.", DefaultValueFactory = _ => 3 };
        var ns = new Option<string?>("--namespace") { Description = "Kubernetes namespace." };
        var dbSecret = new Option<string>("--db-secret") { Description = "Secret holding the PostgreSQL connection string (key connection-string).", DefaultValueFactory = _ => "morph-kms-postgres" };
        var tlsSecret = new Option<string?>("--tls-secret") { Description = "With --insecure-no-tee: TLS Secret with the KMS serving certificate (default morph-kms-tls)." };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Directory to write into.", DefaultValueFactory = _ => new DirectoryInfo(".") };
        var command = new Command("kms", "Generate a replicated KMS Deployment + Service (plain YAML and kustomization) running in a TEE.")
        {
            image, tee, runtimeClass, executable, guest, insecure, replicas, ns, dbSecret, tlsSecret, output,
        };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var noTee = parse.GetValue(insecure);
                if (!noTee && parse.GetValue(tlsSecret) is not null)
                {
                    throw new ArgumentException("--tls-secret is for --insecure-no-tee: in a TEE the KMS makes its TLS key itself");
                }

                var exportTee = parse.GetValue(tee) is { } name ? Enum.Parse<ExportTee>(name, ignoreCase: true) : (ExportTee?)null;
                var result = KmsExporter.Export(new KmsExportRequest
                {
                    Image = parse.GetValue(image)!,
                    Tee = exportTee,
                    GuestLaunchValues = parse.GetValue(guest) is { } launch ? GuestLaunchValues(launch, exportTee) : null,
                    RuntimeClass = parse.GetValue(runtimeClass),
                    Command = parse.GetValue(executable)!,
                    InsecureNoTee = noTee,
                    Replicas = parse.GetValue(replicas),
                    Namespace = parse.GetValue(ns),
                    DatabaseSecret = parse.GetValue(dbSecret)!,
                    TlsSecret = parse.GetValue(tlsSecret) ?? "morph-kms-tls",
                });
                if (noTee)
                {
                    await stderr.WriteLineAsync("morph: WARNING: --insecure-no-tee: the KMS runs outside any TEE and reads its TLS key from a Kubernetes Secret; "
                        + "the cluster's administrators can impersonate it to every agent and read tokens and secrets. Use it on test clusters only.");
                }

                var directory = parse.GetValue(output)!;
                directory.Create();
                foreach (var file in result.Files)
                {
                    await File.WriteAllTextAsync(Path.Combine(directory.FullName, file.Path), file.Content, ct);
                    await stdout.WriteLineAsync($"wrote {Path.Combine(directory.FullName, file.Path)}");
                }

                foreach (var line in result.Measured)
                {
                    await stdout.WriteLineAsync($"  {line}");
                }

                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is ArgumentException or FormatException or IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }

    /// <summary>
    /// Reads <c>--guest-measurement</c> as a KMS pin of the guest image alone, of the TEE exported for: the export adds the
    /// initdata digest itself, and a value of another TEE or one already carrying a digest would print a pin nothing matches.
    /// </summary>
    /// <exception cref="FormatException">Not such a pin, naming the option.</exception>
    private static IReadOnlyList<byte[]> GuestLaunchValues(string text, ExportTee? tee)
    {
        KmsMeasurementPin pin;
        try
        {
            pin = KmsMeasurementPin.Parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"--guest-measurement: {e.Message}", e);
        }

        var expected = tee switch { ExportTee.Snp => TeeType.Snp, ExportTee.Tdx => TeeType.Tdx, _ => (TeeType?)null };
        if (expected is null)
        {
            throw new FormatException("--guest-measurement is for a KMS in a TEE: give --tee snp or tdx");
        }

        if (pin.Tee != expected || !KmsMeasurementPin.IsTyped(text))
        {
            // Typed, as --tee says which: a bare value would be read as SNP whatever the export is for.
            throw new FormatException($"--guest-measurement: --tee {expected.Value.ToWireName()} takes the guest's launch values as "
                + (expected == TeeType.Tdx ? "tdx:MRTD/RTMR0/RTMR1/RTMR2/RTMR3" : "snp:MEASUREMENT")
                + (KmsMeasurementPin.IsTyped(text) ? $", not {pin.Tee.ToWireName()}:" : ", with the TEE named"));
        }

        if (pin.BindsWorkload)
        {
            throw new FormatException("--guest-measurement: give the guest image's launch values alone; the export adds the host_data / mrconfigid of the initdata it writes");
        }

        return [.. pin.Components.Select(c => c.ToArray())];
    }
}
