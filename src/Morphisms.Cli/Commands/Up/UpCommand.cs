using System.CommandLine;
using Morphisms.Cli.Paths;

namespace Morphisms.Cli.Commands.Up;

/// <summary>
/// <c>morph up</c>: the KMS and confidential serving in one process on loopback, until Ctrl-C. Prints where
/// everything is; <c>morph deploy|invoke|ls|…</c> and <c>morph kms …</c> find it through <c>DATA/up.json</c>.
/// </summary>
public static class UpCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var command = new Command("up", "Start a dev KMS and confidential serving on loopback (simulated TEE) until Ctrl-C.");
        command.SetAction(async (_, ct) =>
        {
            var paths = MorphPaths.FromEnvironment();
            LocalStack stack;
            try
            {
                stack = await LocalStack.StartAsync(paths, TextWriter.Synchronized(stderr), ct);
            }
            catch (UpException e)
            {
                await stderr.WriteLineAsync($"morph: {e.Message}");
                return ExitCodes.Rejected;
            }

            await using (stack)
            {
                await PrintAsync(stdout, stack);
                await stdout.WriteLineAsync("running; Ctrl-C stops everything (instances drained, KMS sealed)");
                await stdout.FlushAsync(CancellationToken.None);
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                catch (OperationCanceledException)
                {
                    // Ctrl-C or SIGTERM: leaving the using block drains the instances and seals the KMS.
                }

                await stdout.WriteLineAsync("stopping: draining instances, sealing the KMS");
            }

            await stdout.WriteLineAsync("stopped");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Prints where the stack's parts listen and where its state lives (never the token itself).</summary>
    internal static async Task PrintAsync(TextWriter stdout, LocalStack stack)
    {
        var state = stack.State;
        await stdout.WriteLineAsync($"KMS          {state.KmsUrl} (dev mode, SIMULATED TEE trusted)");
        await stdout.WriteLineAsync($"  root CA    sha256 {stack.Trust.RootCaSha256} (pinned through its attestation in {stack.TrustStorePath})");
        await stdout.WriteLineAsync($"  token      in {state.TokenFile} (mode 0600)");
        await stdout.WriteLineAsync($"gateway      {state.Gateway} (confidential: SNI passthrough, TLS ends in the instance)");
        await stdout.WriteLineAsync($"  functions  https://NAME.{state.Domain} (morph invoke NAME)");
        await stdout.WriteLineAsync($"control API  {state.Control}");
        await stdout.WriteLineAsync($"  token      in {stack.ControlTokenFile} (mode 0600; morph deploy|ls|... send it)");
        await stdout.WriteLineAsync($"  metrics    GET {state.Control}metrics with the token in {stack.MetricsTokenFile} (opens nothing else)");
        await stdout.WriteLineAsync($"data dir     {stack.Paths.DataDirectory}");
        await stdout.WriteLineAsync($"config dir   {stack.Paths.ConfigDirectory}");
    }
}
