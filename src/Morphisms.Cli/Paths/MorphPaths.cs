namespace Morphisms.Cli.Paths;

/// <summary>
/// Where <c>morph</c> keeps state (XDG data directory) and client trust (XDG config directory).
/// <c>MORPHISMS_HOME</c> overrides both, which tests use to get a clean state.
/// </summary>
public sealed record MorphPaths(string DataDirectory, string ConfigDirectory)
{
    /// <summary>The simulated TEE of this installation.</summary>
    public string SimulatedTeeDirectory => Path.Combine(DataDirectory, "simulated-tee");

    /// <summary>Resolves the directories from the environment.</summary>
    public static MorphPaths FromEnvironment()
    {
        var home = Environment.GetEnvironmentVariable("MORPHISMS_HOME");
        if (!string.IsNullOrWhiteSpace(home))
        {
            return new MorphPaths(Path.Combine(home, "data"), Path.Combine(home, "config"));
        }

        var userHome = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        var data = Environment.GetEnvironmentVariable("XDG_DATA_HOME") is { Length: > 0 } xdgData ? xdgData : Path.Combine(userHome, ".local", "share");
        var config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } xdgConfig ? xdgConfig : Path.Combine(userHome, ".config");
        return new MorphPaths(Path.Combine(data, "morphisms"), Path.Combine(config, "morphisms"));
    }
}
