using System.CommandLine;
using Morphisms.Deploy.Knative;
using Morphisms.Serving.Spec;

namespace Morphisms.Cli.Commands.Export;

/// <summary>
/// <c>morph export knative FN --tee snp|tdx|sgx</c>: a Knative Service (and Kata initdata or Gramine packaging) for a
/// function. SNP/TDX need <c>--queue-proxy-image</c> pinned by digest; <c>--insecure-unpinned-queue-proxy</c> does
/// without it, for test clusters, and warns.
/// </summary>
public static class ExportKnativeCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("function") { Description = "A function directory (with function.yaml) or a spec file." };
        var tee = new Option<string?>("--tee") { Description = "snp, tdx or sgx; defaults to the spec's tee when that is one of them." };
        tee.AcceptOnlyFromAmong("snp", "tdx", "sgx");
        var kms = new Option<string>("--kms") { Description = "KMS base address (https) the function attests to.", Required = true };
        var pin = new Option<string>("--kms-ca-sha256") { Description = "SHA-256 (hex) of the CA that issued the KMS's TLS certificate (or of that certificate): the measured pin. Never the KMS PKI root (root_ca_sha256), which also signs pki/ role certificates.", Required = true };
        var image = new Option<string>("--image") { Description = "Container image pinned by digest (name@sha256:...).", Required = true };
        var ns = new Option<string?>("--namespace") { Description = "Kubernetes namespace for the Service." };
        var queueProxy = new Option<string?>("--queue-proxy-image") { Description = "SNP/TDX, required: Knative's queue-proxy image pinned by digest (config-deployment's queue-sidecar-image); the agent policy pins it." };
        // Named like --insecure-no-tee: queue-proxy runs inside the function's TEE, so an unpinned one is a program of the host's there.
        var insecureQueueProxy = new Option<bool>("--insecure-unpinned-queue-proxy") { Description = "INSECURE, test clusters only (SNP/TDX): no --queue-proxy-image; the host may run any image as queue-proxy inside the function's TEE." };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Directory to write into.", DefaultValueFactory = _ => new DirectoryInfo(".") };
        var command = new Command("knative", "Generate a Knative Service running the function under morph-init.") { path, tee, kms, pin, image, ns, queueProxy, insecureQueueProxy, output };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                var spec = FunctionSpecLoader.Load(parse.GetValue(path)!);
                var target = parse.GetValue(tee) ?? spec.Tee switch
                {
                    FunctionTee.Snp => "snp",
                    FunctionTee.Tdx => "tdx",
                    FunctionTee.Sgx => "sgx",
                    _ => throw new ArgumentException($"the spec's tee is {spec.Tee.ToString().ToLowerInvariant()}; pass --tee snp|tdx|sgx"),
                };
                var pinHex = parse.GetValue(pin)!;
                var request = new ExportRequest
                {
                    Function = spec,
                    Tee = Enum.Parse<ExportTee>(target, ignoreCase: true),
                    Kms = Uri.TryCreate(parse.GetValue(kms), UriKind.Absolute, out var url) ? url : throw new ArgumentException($"--kms: '{parse.GetValue(kms)}' is not a URL"),
                    KmsCaSha256 = pinHex.Length == 64 && pinHex.All(char.IsAsciiHexDigit) ? Convert.FromHexString(pinHex) : throw new ArgumentException("--kms-ca-sha256: expected 64 hex digits"),
                    Image = parse.GetValue(image)!,
                    Namespace = parse.GetValue(ns),
                    QueueProxyImage = parse.GetValue(queueProxy),
                    InsecureUnpinnedQueueProxy = parse.GetValue(insecureQueueProxy),
                };
                var result = KnativeExporter.Export(request);
                if (request.InsecureUnpinnedQueueProxy)
                {
                    await stderr.WriteLineAsync("morph: WARNING: --insecure-unpinned-queue-proxy: the agent policy admits any image as queue-proxy, which runs "
                        + "inside the function's TEE beside the app's plaintext port; the host can run its own program there. Use it on test clusters only.");
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
            catch (Exception e) when (e is FunctionSpecException or ArgumentException or IOException or UnauthorizedAccessException)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.UsageOrInput;
            }
        });
        return command;
    }
}
