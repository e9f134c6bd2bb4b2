using System.CommandLine;
using System.Text.Json.Nodes;
using Morphisms.Serving.Spec;

namespace Morphisms.Cli.Commands.Serving;

/// <summary>
/// <c>morph deploy DIR|SPEC</c>: apply a function spec (a new revision when anything but traffic changed). When it moves
/// traffic to a revision that starts with instances, the host answers once that revision has a ready instance; one that
/// gets none within its progress deadline (10 min) leaves the traffic where it was, and the command says so and exits 1.
/// </summary>
public static class DeployCommand
{
    /// <summary>Creates the command.</summary>
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var path = new Argument<string>("path") { Description = "A function directory (with function.yaml) or a spec file." };
        var command = new Command("deploy", "Deploy a function: create a revision, register its measurement with the KMS, move traffic to it once it has a ready instance (a first deploy or scale.initial 0: at once).") { path };
        ServingControl.Set(command, stdout, stderr, async (parse, http, json, ct) =>
        {
            // The host runs on this machine and reads the spec itself; send an absolute path so relative bundles resolve.
            var result = await ServingControl.SendAsync(http, HttpMethod.Post, "v1/functions", new JsonObject { ["path"] = Path.GetFullPath(parse.GetValue(path)!) }, ct);
            if (json)
            {
                await ServingControl.PrintJsonAsync(stdout, result);
                return ExitCodes.Ok;
            }

            var created = result?["created"]?.GetValue<bool>() == true;
            await stdout.WriteLineAsync($"{result?["function"]}: revision {result?["revision"]}{(created ? " created" : " unchanged")}");
            await stdout.WriteLineAsync($"  host         {result?["host"]}");
            // The typed form, where the host knows it, is what `morph invoke --expect-measurement` takes as is.
            await stdout.WriteLineAsync($"  measurement  {result?["expect_measurement"] ?? result?["measurement"]}");
            await stdout.WriteLineAsync($"  kms          {result?["kms"]}");
            await stdout.WriteLineAsync($"  traffic      {result?["rollout"]}");
            return ExitCodes.Ok;
        }, parse => CheckSpecExists(parse.GetValue(path)!), ServingControl.RolloutTimeout);
        return command;
    }

    // The host reads the spec itself and would refuse a missing one too, but that is the user's typo, not the host's
    // answer: exit 2, and without a host running.
    private static void CheckSpecExists(string path)
    {
        try
        {
            FunctionSpecLoader.Locate(path);
        }
        catch (FunctionSpecException e)
        {
            throw new ServingCliException(e.Message, ExitCodes.UsageOrInput);
        }
    }
}
