using System.CommandLine;
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
        var insecure = new Option<bool>("--insecure-no-tee") { Description = "INSECURE, test clusters only: no TEE, TLS key from a Secret the cluster's administrators can read." };
        var replicas = new Option<int>("--replicas") { Description = "Number of KMS replicas.", DefaultValueFactory = _ => 3 };
        var ns = new Option<string?>("--namespace") { Description = "Kubernetes namespace." };
        var dbSecret = new Option<string>("--db-secret") { Description = "Secret holding the PostgreSQL connection string (key connection-string).", DefaultValueFactory = _ => "morph-kms-postgres" };
        var tlsSecret = new Option<string?>("--tls-secret") { Description = "With --insecure-no-tee: TLS Secret with the KMS serving certificate (default morph-kms-tls)." };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Directory to write into.", DefaultValueFactory = _ => new DirectoryInfo(".") };
        var command = new Command("kms", "Generate a replicated KMS Deployment + Service (plain YAML and kustomization) running in a TEE.")
        {
            image, tee, runtimeClass, executable, insecure, replicas, ns, dbSecret, tlsSecret, output,
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

                var result = KmsExporter.Export(new KmsExportRequest
                {
                    Image = parse.GetValue(image)!,
                    Tee = parse.GetValue(tee) is { } name ? Enum.Parse<ExportTee>(name, ignoreCase: true) : null,
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
            catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }
}
