using System.CommandLine;
using Morphisms.Deploy.Kms;

namespace Morphisms.Cli.Commands.Export;

/// <summary><c>morph export kms</c>: an N-replica KMS Deployment and Service, as plain YAML and as a kustomization.</summary>
public static class ExportKmsCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var image = new Option<string>("--image") { Description = "KMS image (morph) pinned by digest (name@sha256:...).", Required = true };
        var replicas = new Option<int>("--replicas") { Description = "Number of KMS replicas.", DefaultValueFactory = _ => 3 };
        var ns = new Option<string?>("--namespace") { Description = "Kubernetes namespace." };
        var dbSecret = new Option<string>("--db-secret") { Description = "Secret holding the PostgreSQL connection string (key connection-string).", DefaultValueFactory = _ => "morph-kms-postgres" };
        var tlsSecret = new Option<string>("--tls-secret") { Description = "TLS Secret with the KMS serving certificate.", DefaultValueFactory = _ => "morph-kms-tls" };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Directory to write into.", DefaultValueFactory = _ => new DirectoryInfo(".") };
        var command = new Command("kms", "Generate a replicated KMS Deployment + Service (plain YAML and kustomization).") { image, replicas, ns, dbSecret, tlsSecret, output };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var files = KmsExporter.Export(new KmsExportRequest
                {
                    Image = parse.GetValue(image)!,
                    Replicas = parse.GetValue(replicas),
                    Namespace = parse.GetValue(ns),
                    DatabaseSecret = parse.GetValue(dbSecret)!,
                    TlsSecret = parse.GetValue(tlsSecret)!,
                });
                var directory = parse.GetValue(output)!;
                directory.Create();
                foreach (var file in files)
                {
                    await File.WriteAllTextAsync(Path.Combine(directory.FullName, file.Path), file.Content, ct);
                    await stdout.WriteLineAsync($"wrote {Path.Combine(directory.FullName, file.Path)}");
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
