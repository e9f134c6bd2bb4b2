using System.CommandLine;
using System.Text.Json.Nodes;

namespace Morphisms.Cli.Commands.Kms;

/// <summary>
/// Which token a lookup, renew or revoke acts on: the caller's own (default), one named by its accessor, or one read
/// from standard input. A token value is never accepted on the command line.
/// </summary>
internal sealed class TokenTarget
{
    private readonly Option<string?> _accessor = new("--accessor") { Description = "Act on the token with this accessor." };
    private readonly Option<bool> _stdin = new("--stdin") { Description = "Act on the token read from standard input." };

    /// <summary>Adds the options.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(_accessor);
        command.Options.Add(_stdin);
    }

    /// <summary>The API path (<c>auth/token/OPERATION[-self|-accessor]</c>) and body for the chosen token.</summary>
    public (string Path, JsonObject? Body) Resolve(ParseResult parse, string operation, bool selfIsGet = false)
    {
        var accessor = parse.GetValue(_accessor);
        var fromStdin = parse.GetValue(_stdin);
        if (accessor is not null && fromStdin)
        {
            throw KmsCliException.Usage("--accessor and --stdin are alternatives");
        }

        if (accessor is not null)
        {
            return ($"auth/token/{operation}-accessor", new JsonObject { ["accessor"] = accessor });
        }

        if (fromStdin)
        {
            var token = SecretInput.Lines(SecretInput.Read(null, "--stdin", BoundedInput.SecretLimit, new HiddenPrompt("Token", OneLine: true))).FirstOrDefault()
                ?? throw KmsCliException.Usage("--stdin: no token on standard input");
            return ($"auth/token/{operation}", new JsonObject { ["token"] = token });
        }

        return ($"auth/token/{operation}-self", selfIsGet ? null : []);
    }
}
