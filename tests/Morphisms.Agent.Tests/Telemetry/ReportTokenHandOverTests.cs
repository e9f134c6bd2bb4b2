using System.Security.Cryptography;
using Morphisms.Agent.Telemetry;

namespace Morphisms.Agent.Tests.Telemetry;

/// <summary>
/// How morph-init takes its report token: from the file the serving host names (read, then deleted, so the app never
/// finds it), or from the variable for an agent started by hand; both variables leave the environment whatever happens,
/// and a file it cannot read or delete stops the agent. The environment is a dictionary here: this test process's own
/// is inherited by the agents other tests start.
/// </summary>
public sealed class ReportTokenHandOverTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("morph-report-token-").FullName;
    private readonly Dictionary<string, string?> _environment = new(StringComparer.Ordinal) { ["PATH"] = "/usr/bin" };
    private readonly string _token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    [Fact]
    public void The_file_is_read_and_deleted_and_both_variables_removed()
    {
        var file = Write("report-token", _token + "\n");
        _environment[AgentOptions.ReportTokenFileVariable] = file;

        Assert.Equal(_token, Take());

        Assert.False(File.Exists(file));
        Assert.Equal(["PATH"], _environment.Keys);
    }

    [Fact]
    public void The_variable_still_works_for_an_agent_started_by_hand_and_is_removed()
    {
        _environment[AgentOptions.ReportTokenVariable] = $" {_token} ";

        Assert.Equal(_token, Take());

        Assert.Equal(["PATH"], _environment.Keys);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", "")]
    [InlineData(" ", "\t")]
    public void Neither_given_is_no_token(string? token, string? file)
    {
        _environment[AgentOptions.ReportTokenVariable] = token;
        _environment[AgentOptions.ReportTokenFileVariable] = file;

        Assert.Null(Take());

        Assert.Equal(["PATH"], _environment.Keys);
    }

    [Fact]
    public void Both_given_is_refused_and_the_file_is_deleted_all_the_same()
    {
        var file = Write("report-token", _token);
        _environment[AgentOptions.ReportTokenVariable] = "another";
        _environment[AgentOptions.ReportTokenFileVariable] = file;

        var e = Assert.Throws<AgentException>(Take);

        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);
        Assert.Contains("both in MORPH_REPORT_TOKEN and in the file MORPH_REPORT_TOKEN_FILE names", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_token, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("another", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(file));
        Assert.Equal(["PATH"], _environment.Keys);
    }

    [Fact]
    public void A_missing_file_stops_the_agent_and_says_which()
    {
        var file = Path.Combine(_dir, "absent");
        _environment[AgentOptions.ReportTokenFileVariable] = file;

        var e = Assert.Throws<AgentException>(Take);

        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);
        Assert.StartsWith($"cannot read the report token file {file} (MORPH_REPORT_TOKEN_FILE): ", e.Message, StringComparison.Ordinal);
        Assert.Equal(["PATH"], _environment.Keys);
    }

    [Fact]
    public void A_path_that_is_no_file_stops_the_agent()
    {
        var directory = Directory.CreateDirectory(Path.Combine(_dir, "a-directory")).FullName;

        var e = Assert.Throws<AgentException>(() => ReportTokenHandOver.FromFile(directory));

        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);
        Assert.StartsWith($"cannot read the report token file {directory} ", e.Message, StringComparison.Ordinal);
        Assert.True(Directory.Exists(directory));
    }

    [Fact]
    public void A_file_it_can_read_but_not_delete_stops_the_agent_without_showing_the_content()
    {
        // procfs refuses unlink to everyone, root included (which a read-only directory would not stop).
        const string undeletable = "/proc/version";
        var content = File.ReadAllText(undeletable).Trim();

        var e = Assert.Throws<AgentException>(() => ReportTokenHandOver.FromFile(undeletable));

        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);
        Assert.StartsWith($"cannot delete the report token file {undeletable} (MORPH_REPORT_TOKEN_FILE) after reading it, so the app could read it: ", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(content, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_file_stops_the_agent_and_is_deleted()
    {
        var file = Write("report-token", " \n");

        var e = Assert.Throws<AgentException>(() => ReportTokenHandOver.FromFile(file));

        Assert.Equal(AgentExitCodes.Usage, e.ExitCode);
        Assert.Equal($"the report token file {file} (MORPH_REPORT_TOKEN_FILE) is empty", e.Message);
        Assert.False(File.Exists(file));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string? Take() => ReportTokenHandOver.Take(name => _environment.GetValueOrDefault(name), name => _environment.Remove(name));

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }
}
