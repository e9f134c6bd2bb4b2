using System.Text.Json.Nodes;
using Morphisms.Cli.Commands.Kms;

namespace Morphisms.Cli.Tests.Kms;

/// <summary>Tests that change process-wide state (environment, standard input); their collection runs them one at a time.</summary>
[Collection(nameof(KmsProcessStateTests))]
public class KmsProcessStateTests
{
    [Fact]
    public async Task Address_and_token_come_from_the_environment_and_a_missing_token_is_named()
    {
        await using var kms = await CliKms.StartDevAsync();
        using (new EnvironmentScope(("MORPH_KMS_ADDR", kms.Address), ("MORPH_KMS_TOKEN", null)))
        {
            var noToken = await MorphRunner.RunAsync("kms", "policy", "list");
            Assert.Equal(ExitCodes.UsageOrInput, noToken.ExitCode);
            Assert.Contains("MORPH_KMS_TOKEN", noToken.Stderr, StringComparison.Ordinal);
        }

        using (new EnvironmentScope(("MORPH_KMS_ADDR", kms.Address), ("MORPH_KMS_TOKEN", kms.Server.DevCredentials!.RootToken)))
        {
            var list = await MorphRunner.RunAsync("kms", "policy", "list");
            Assert.Equal(ExitCodes.Ok, list.ExitCode);
            Assert.Contains("default", list.Stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Secrets_are_read_from_standard_input()
    {
        await using var kms = await CliKms.StartDevAsync();
        var created = JsonNode.Parse((await kms.RunAsync("token", "create", "--policy", "default", "--json")).Stdout)!["auth"]!;
        var token = created["client_token"]!.GetValue<string>();

        var lookup = await WithStdinAsync(token + "\n", () => kms.RunAsync("token", "lookup", "--stdin", "--json"));
        Assert.Equal(ExitCodes.Ok, lookup.ExitCode);
        Assert.Equal(created["accessor"]!.GetValue<string>(), JsonNode.Parse(lookup.Stdout)!["accessor"]!.GetValue<string>());

        var put = await WithStdinAsync("""{"api_key":"from-stdin"}""", () => kms.RunAsync("kv", "put", "secret/stdin"));
        Assert.Equal(ExitCodes.Ok, put.ExitCode);
        Assert.Equal("from-stdin", (await kms.RunAsync("kv", "get", "secret/stdin", "--field", "api_key")).Stdout.Trim());

        Assert.Equal(ExitCodes.Ok, (await WithStdinAsync(token, () => kms.RunAsync("token", "revoke", "--stdin"))).ExitCode);
        var revoked = await WithStdinAsync(token, () => kms.RunAsync("token", "lookup", "--stdin"));
        Assert.Equal(ExitCodes.Rejected, revoked.ExitCode);
        Assert.DoesNotContain(token, revoked.Stderr + revoked.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Standard_input_over_the_cap_is_refused_with_exit_2()
    {
        await using var kms = await CliKms.StartDevAsync();

        var put = await WithStdinAsync("{\"v\":\"" + new string('x', 2 * 1024 * 1024) + "\"}", () => kms.RunAsync("kv", "put", "secret/stdin"));

        Assert.Equal(ExitCodes.UsageOrInput, put.ExitCode);
        Assert.Contains("morph: standard input is larger than 1 MiB", put.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("--data-file", put.Stderr, StringComparison.Ordinal);
    }

    /// <summary>Without --data-file the secret is read from standard input, so an error names standard input, not the option.</summary>
    [Theory]
    [InlineData("hello\n", "standard input: not JSON (line 1, byte 1)")]
    [InlineData("[1]", "standard input: expected a JSON object of the secret's fields")]
    public async Task Bad_secret_data_on_standard_input_is_named_as_standard_input(string input, string message)
    {
        await using var kms = await CliKms.StartDevAsync();

        var put = await WithStdinAsync(input, () => kms.RunAsync("kv", "put", "secret/stdin"));

        Assert.Equal(ExitCodes.UsageOrInput, put.ExitCode);
        Assert.Contains($"morph: {message}", put.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("--data-file", put.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Init_writes_the_keys_privately_and_unseal_reads_them_from_stdin()
    {
        await using var kms = await CliKms.StartFreshAsync();
        Assert.Equal(ExitCodes.Rejected, (await kms.RunAsync("status")).ExitCode);

        var output = Path.Combine(kms.Directory, "init.json");
        var init = await kms.RunAsync("init", "--key-shares", "3", "--key-threshold", "2", "--output", output);
        Assert.Equal(ExitCodes.Ok, init.ExitCode);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(output));
        var keys = JsonNode.Parse(await File.ReadAllTextAsync(output))!;
        Assert.DoesNotContain(keys["root_token"]!.GetValue<string>(), init.Stdout, StringComparison.Ordinal);
        // Initialised already: the KMS's refusal (exit 1); the existing --output file stops it first (exit 2).
        Assert.Equal(ExitCodes.UsageOrInput, (await kms.RunAsync("init", "--output", output)).ExitCode);
        var again = await kms.RunAsync("init");
        Assert.Equal(ExitCodes.Rejected, again.ExitCode);
        Assert.Contains("Vault is already initialized", again.Stderr, StringComparison.Ordinal);

        var first = keys["keys"]![0]!.GetValue<string>();
        var second = keys["keys_base64"]![1]!.GetValue<string>();
        // A share taken is a success for its holder, who is told how many more are needed; so is a reset.
        var partial = await WithStdinAsync(first + "\n", () => kms.RunAsync("unseal"));
        Assert.Equal(ExitCodes.Ok, partial.ExitCode);
        Assert.Contains("1/2", partial.Stdout, StringComparison.Ordinal);
        Assert.Contains("still sealed: 1 of 2 shares; 1 more needed to unseal", partial.Stdout, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Rejected, (await kms.RunAsync("status")).ExitCode);
        var reset = await kms.RunAsync("unseal", "--reset");
        Assert.Equal(ExitCodes.Ok, reset.ExitCode);
        Assert.Contains("still sealed: 0 of 2 shares; 2 more needed to unseal", reset.Stdout, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, (await WithStdinAsync(first + "\n", () => kms.RunAsync("unseal"))).ExitCode);
        var unsealed = await WithStdinAsync($"# shares\n{second}\n", () => kms.RunAsync("unseal", "--key-file", "-"));
        Assert.Equal(ExitCodes.Ok, unsealed.ExitCode);
        // The root CA exists from the first unseal: its fingerprint, for the operator to publish, is shown from then on.
        Assert.Matches(@"root ca sha256\s+[0-9a-f]{64}", unsealed.Stdout);
        Assert.DoesNotContain("still sealed", unsealed.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("root ca", partial.Stdout, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("status")).ExitCode);
        Assert.Equal(ExitCodes.UsageOrInput, (await WithStdinAsync("", () => kms.RunAsync("unseal"))).ExitCode);
    }

    /// <summary>
    /// Shares that do not unseal are the KMS refusing them (exit 1, its message, the progress restarted); a share that is
    /// not one at all (not hex or base64) is the user's input (exit 2).
    /// </summary>
    [Fact]
    public async Task Shares_that_do_not_unseal_exit_1_and_a_malformed_share_exits_2()
    {
        await using var kms = await CliKms.StartFreshAsync();
        var output = Path.Combine(kms.Directory, "init.json");
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("init", "--key-shares", "3", "--key-threshold", "2", "--output", output)).ExitCode);
        var keys = JsonNode.Parse(await File.ReadAllTextAsync(output))!["keys_base64"]!.AsArray().Select(k => k!.GetValue<string>()).ToList();
        var wrong = Convert.FromBase64String(keys[1]);
        wrong[^1] ^= 0x5a;

        var refused = await WithStdinAsync($"{keys[0]}\n{Convert.ToBase64String(wrong)}\n", () => kms.RunAsync("unseal"));
        Assert.Equal(ExitCodes.Rejected, refused.ExitCode);
        Assert.Contains("unseal failed", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("0/2", (await kms.RunAsync("status")).Stdout, StringComparison.Ordinal);

        var malformed = await WithStdinAsync("not a share!\n", () => kms.RunAsync("unseal"));
        Assert.Equal(ExitCodes.UsageOrInput, malformed.ExitCode);
        Assert.Contains("the KMS answered 400", malformed.Stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// <c>morph kms init --output</c>'s file (or a dev KMS's key file) is not a file of shares: sent whole it would be one
    /// malformed share and a bare 400; it is refused before anything is sent, saying how to take the shares out of it.
    /// </summary>
    [Fact]
    public async Task Unseal_refuses_inits_json_output_with_the_command_that_takes_the_shares_out()
    {
        await using var kms = await CliKms.StartFreshAsync();
        var output = Path.Combine(kms.Directory, "init.json");
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("init", "--key-shares", "3", "--key-threshold", "2", "--output", output)).ExitCode);
        var keys = JsonNode.Parse(await File.ReadAllTextAsync(output))!["keys_base64"]!.AsArray();

        var file = await kms.RunAsync("unseal", "--key-file", output);
        Assert.Equal(ExitCodes.UsageOrInput, file.ExitCode);
        Assert.Contains($"morph: --key-file {output}: JSON, not unseal key shares", file.Stderr, StringComparison.Ordinal);
        Assert.Contains($"jq -r '.keys_base64[]' {output}", file.Stderr, StringComparison.Ordinal);
        var piped = await WithStdinAsync(await File.ReadAllTextAsync(output), () => kms.RunAsync("unseal"));
        Assert.Equal(ExitCodes.UsageOrInput, piped.ExitCode);
        Assert.Contains("morph: standard input: JSON, not unseal key shares", piped.Stderr, StringComparison.Ordinal);
        foreach (var refused in new[] { file, piped })
        {
            Assert.DoesNotContain(keys[0]!.GetValue<string>(), refused.Stderr + refused.Stdout, StringComparison.Ordinal);
        }

        // Nothing was submitted: the KMS's progress is untouched, and the shares themselves still unseal.
        Assert.Contains("0/2", (await kms.RunAsync("status")).Stdout, StringComparison.Ordinal);
        var shares = string.Join('\n', keys.Select(k => k!.GetValue<string>()));
        Assert.Equal(ExitCodes.Ok, (await WithStdinAsync(shares, () => kms.RunAsync("unseal"))).ExitCode);
        Assert.Equal(ExitCodes.Ok, (await kms.RunAsync("status")).ExitCode);
    }

    /// <summary>
    /// At a terminal a secret is read without echo after a prompt on standard error: the prompt never shows what was
    /// typed, Backspace edits, Enter ends a share or token and Ctrl-D ends secret data; a file is read as ever.
    /// </summary>
    [Fact]
    public async Task At_a_terminal_secrets_are_read_without_echo_after_a_prompt()
    {
        await using var fresh = await CliKms.StartFreshAsync();
        var output = Path.Combine(fresh.Directory, "init.json");
        Assert.Equal(ExitCodes.Ok, (await fresh.RunAsync("init", "--key-shares", "3", "--key-threshold", "2", "--output", output)).ExitCode);
        var share = JsonNode.Parse(await File.ReadAllTextAsync(output))!["keys_base64"]![0]!.GetValue<string>();

        // A typo corrected with Backspace, then Enter: one share, its text never written anywhere.
        var (unseal, prompts) = await AtTerminalAsync(share[..5] + "x\b" + share[5..] + "\r", () => fresh.RunAsync("unseal"));
        Assert.True(unseal.ExitCode == ExitCodes.Ok, unseal.Stderr);
        Assert.Contains("still sealed: 1 of 2 shares", unseal.Stdout, StringComparison.Ordinal);
        Assert.Equal("Unseal key share (input hidden): \n", prompts.ReplaceLineEndings("\n"));
        Assert.DoesNotContain(share[..5], prompts + unseal.Stdout + unseal.Stderr, StringComparison.Ordinal);

        // A file is a file, terminal or not: no prompt.
        var shares = Path.Combine(fresh.Directory, "share-2");
        await File.WriteAllTextAsync(shares, JsonNode.Parse(await File.ReadAllTextAsync(output))!["keys_base64"]![1]!.GetValue<string>());
        var (fromFile, none) = await AtTerminalAsync("", () => fresh.RunAsync("unseal", "--key-file", shares));
        Assert.Equal(ExitCodes.Ok, fromFile.ExitCode);
        Assert.Equal("", none);

        // Secret data runs over lines until Ctrl-D.
        await using var kms = await CliKms.StartDevAsync();
        var (put, dataPrompt) = await AtTerminalAsync("{\"api_key\":\r\"typed\"}\u0004", () => kms.RunAsync("kv", "put", "secret/typed"));
        Assert.True(put.ExitCode == ExitCodes.Ok, put.Stderr);
        Assert.Equal("Secret data, a JSON object (input hidden; end with Ctrl-D): \n", dataPrompt.ReplaceLineEndings("\n"));
        Assert.Equal("typed", (await kms.RunAsync("kv", "get", "secret/typed", "--field", "api_key")).Stdout.Trim());
    }

    /// <summary>
    /// Runs with standard input a terminal on which <paramref name="typed"/> is typed (\r Enter, \b Backspace, \u0004
    /// Ctrl-D), returning what was prompted; <see cref="Console.In"/> is empty meanwhile, so reading it instead reads nothing.
    /// </summary>
    private static async Task<(MorphRunner.Outcome Outcome, string Prompts)> AtTerminalAsync(string typed, Func<Task<MorphRunner.Outcome>> run)
    {
        var keys = new Queue<char>(typed);
        using var prompts = new StringWriter();
        var previous = SecretInput.Terminal;
        SecretInput.Terminal = new SecretTerminal(() => true, () => Key(keys.Dequeue()), () => prompts);
        try
        {
            return (await WithStdinAsync("", run, terminal: true), prompts.ToString());
        }
        finally
        {
            SecretInput.Terminal = previous;
        }
    }

    private static ConsoleKeyInfo Key(char c) => c switch
    {
        '\r' => new ConsoleKeyInfo(c, ConsoleKey.Enter, false, false, false),
        '\b' => new ConsoleKeyInfo(c, ConsoleKey.Backspace, false, false, false),
        '\u0004' => new ConsoleKeyInfo(c, ConsoleKey.D, false, false, control: true),
        _ => new ConsoleKeyInfo(c, 0, false, false, false),
    };

    /// <summary>
    /// Runs with <paramref name="input"/> as standard input, a pipe unless <paramref name="terminal"/> (whatever the test
    /// host's own standard input is: run from a terminal, it would be one).
    /// </summary>
    private static async Task<MorphRunner.Outcome> WithStdinAsync(string input, Func<Task<MorphRunner.Outcome>> run, bool terminal = false)
    {
        var previous = Console.In;
        var previousTerminal = SecretInput.Terminal;
        Console.SetIn(new StringReader(input));
        if (!terminal)
        {
            SecretInput.Terminal = previousTerminal with { IsTerminal = () => false };
        }

        try
        {
            return await run();
        }
        finally
        {
            Console.SetIn(previous);
            SecretInput.Terminal = previousTerminal;
        }
    }

    private sealed class EnvironmentScope : IDisposable
    {
        private readonly List<(string Name, string? Value)> _previous = [];

        public EnvironmentScope(params (string Name, string? Value)[] values)
        {
            foreach (var (name, value) in values)
            {
                _previous.Add((name, Environment.GetEnvironmentVariable(name)));
                Environment.SetEnvironmentVariable(name, value);
            }
        }

        public void Dispose()
        {
            foreach (var (name, value) in _previous)
            {
                Environment.SetEnvironmentVariable(name, value);
            }
        }
    }
}
